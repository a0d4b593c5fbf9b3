//! What a data file looks like before training: its columns, first rows,
//! labels, token lengths and every row that cannot be used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::data::{self, Columns, Example, ReadOptions, Skipped};
use crate::error::Result;
use crate::tokenize::BertTokenizer;

/// Rows shown in the preview table.
pub const PREVIEW_ROWS: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct DataPreview {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// The mapping used (the one asked for, else guessed from the header).
    pub columns: Columns,
    pub has_text_b: bool,
    pub rows: usize,
    pub first_rows: Vec<Example>,
    pub label_counts: BTreeMap<String, usize>,
    pub majority_baseline: f64,
    /// `(bucket start, rows)` of token lengths (pairs encoded as the model sees them).
    pub length_histogram: Vec<(usize, usize)>,
    /// Percentiles 50, 90, 95, 99 and the maximum.
    pub length_percentiles: [usize; 5],
    /// Rows that cannot be used, with their lines.
    pub problems: Vec<Skipped>,
}

/// Read `path` with `columns` (guessed from the header when `None`), keeping
/// every bad row as a problem; token lengths need the model's tokenizer.
pub fn preview(
    path: &Path,
    columns: Option<Columns>,
    tokenizer: Option<&BertTokenizer>,
) -> Result<DataPreview> {
    let header = data::read_header(path, None)?;
    let columns = columns.unwrap_or_else(|| data::guess_columns(&header));
    let ds = data::read(
        path,
        &ReadOptions {
            delimiter: None,
            columns: columns.clone(),
            require_label: true,
            skip_bad_rows: true,
        },
    )?;
    let mut lengths = Vec::new();
    if let Some(tok) = tokenizer {
        for e in &ds.examples {
            lengths.push(
                tok.encode(&e.text_a, e.text_b.as_deref(), usize::MAX)?
                    .len(),
            );
        }
    }
    lengths.sort_unstable();
    Ok(DataPreview {
        path: path.to_path_buf(),
        header,
        columns,
        has_text_b: ds.has_text_b,
        rows: ds.examples.len(),
        first_rows: ds.examples.iter().take(PREVIEW_ROWS).cloned().collect(),
        label_counts: ds.label_counts(),
        majority_baseline: ds.majority_baseline(),
        length_histogram: histogram(&lengths),
        length_percentiles: [50.0, 90.0, 95.0, 99.0, 100.0].map(|p| super::percentile(&lengths, p)),
        problems: ds.skipped,
    })
}

/// About 20 equal buckets over `0..=max` of sorted lengths.
fn histogram(sorted: &[usize]) -> Vec<(usize, usize)> {
    let Some(&max) = sorted.last() else {
        return Vec::new();
    };
    let width = (max / 20 + 1).max(1);
    let mut buckets = vec![0usize; max / width + 1];
    for &l in sorted {
        buckets[l / width] += 1;
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, n)| (i * width, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_row_once() {
        let lengths = [3, 5, 5, 9, 40, 41];
        let h = histogram(&lengths);
        assert_eq!(h.iter().map(|b| b.1).sum::<usize>(), lengths.len());
        // Width 3 (41 / 20 + 1): 3 → bucket 1, 5 → 1, 9 → 3, 40 → 13, 41 → 13.
        assert_eq!(h[1], (3, 3));
        assert_eq!(h[3], (9, 1));
        assert_eq!(h[13], (39, 2));
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn preview_lists_problems_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tsv");
        std::fs::write(
            &path,
            "title1_en\ttitle2_en\tlabel\na\tb\tagreed\nc\t\t\n\t\t\nd\te\tunrelated\n",
        )
        .unwrap();
        let p = preview(&path, None, None).unwrap();
        assert_eq!(p.columns.text_a, "title1_en");
        assert_eq!(p.rows, 2);
        assert_eq!(
            p.problems.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(p.label_counts.len(), 2);
        assert!((p.majority_baseline - 0.5).abs() < 1e-12);
    }
}
