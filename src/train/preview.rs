//! What a data file looks like before training: its columns, first rows,
//! labels, token lengths and the rows that cannot be used.
//!
//! One streaming pass: the first rows are kept to show, a seeded uniform
//! sample of rows is kept for token lengths, and every other row is only
//! checked and counted (rows, labels, problems) without copying its text, so
//! a file of millions of rows previews in about the time it takes to read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::data::{self, Columns, Example, ReadOptions, Row, Rows, Skipped};
use crate::error::Result;
use crate::tokenize::BertTokenizer;

/// Rows shown in the preview table.
pub const PREVIEW_ROWS: usize = 8;

/// Rows tokenised for the length histogram: every row of a smaller file, else
/// a uniform sample of this many (reservoir sampling, seeded).
pub const LENGTH_SAMPLE_ROWS: usize = 2_000;

/// Problems kept with their line and reason; all of them are counted.
pub const LISTED_PROBLEMS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct DataPreview {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// The mapping used (the one asked for, else guessed from the header).
    pub columns: Columns,
    pub has_text_b: bool,
    /// Usable rows in the whole file.
    pub rows: usize,
    pub first_rows: Vec<Example>,
    /// Over every usable row of the file.
    pub label_counts: BTreeMap<String, usize>,
    pub majority_baseline: f64,
    /// `(bucket start, rows)` of token lengths (pairs encoded as the model
    /// sees them), over the `sampled_rows` rows of the sample.
    pub length_histogram: Vec<(usize, usize)>,
    /// Percentiles 50, 90, 95, 99 and the maximum (of the sample).
    pub length_percentiles: [usize; 5],
    /// The first [`LISTED_PROBLEMS`] rows that cannot be used, with their lines.
    pub problems: Vec<Skipped>,
    /// Rows that cannot be used, in the whole file.
    pub problem_count: usize,
    /// Rows whose token lengths were counted: all of them up to
    /// [`LENGTH_SAMPLE_ROWS`], else a uniform sample; 0 without a tokenizer.
    pub sampled_rows: usize,
}

impl DataPreview {
    /// How the numbers were counted: "counted 5000000 rows; lengths from a
    /// sample of 2000", and the problems when there are any.
    pub fn summary(&self) -> String {
        let mut text = format!("counted {} rows", self.rows);
        if self.sampled_rows == self.rows {
            text.push_str(&format!("; lengths of all {} rows", self.sampled_rows));
        } else if self.sampled_rows > 0 {
            text.push_str(&format!("; lengths from a sample of {}", self.sampled_rows));
        }
        if self.problem_count > 0 {
            text.push_str(&format!("; {} rows cannot be used", self.problem_count));
            if self.problem_count > self.problems.len() {
                text.push_str(&format!(" (the first {} listed)", self.problems.len()));
            }
        }
        text
    }
}

/// Read `path` with `columns` (guessed from the header when `None`), keeping
/// bad rows as problems; token lengths need the model's tokenizer.
pub fn preview(
    path: &Path,
    columns: Option<Columns>,
    tokenizer: Option<&BertTokenizer>,
) -> Result<DataPreview> {
    let header = data::read_header(path, None)?;
    let columns = columns.unwrap_or_else(|| data::guess_columns(&header));
    let mut rows = Rows::open(
        path,
        &ReadOptions {
            delimiter: None,
            columns: columns.clone(),
            require_label: true,
            skip_bad_rows: true,
        },
    )?;
    let has_text_b = rows.has_text_b();
    let sample_size = if tokenizer.is_some() {
        LENGTH_SAMPLE_ROWS
    } else {
        0
    };
    let mut sample = Reservoir::new(sample_size);
    let mut first_rows = Vec::new();
    // Hashed while counting (millions of lookups), sorted once at the end.
    let mut label_counts: ahash::AHashMap<String, usize> = ahash::AHashMap::new();
    let mut usable = 0;
    let mut problems = Vec::new();
    let mut problem_count = 0;
    while let Some(row) = rows.next_row()? {
        match row {
            Row::Usable(text) => {
                if first_rows.len() < PREVIEW_ROWS {
                    first_rows.push(text.to_example());
                }
                sample.offer(usable, || {
                    (text.text_a.to_string(), text.text_b.map(str::to_string))
                });
                if let Some(label) = text.label {
                    // Only a label seen for the first time is copied.
                    match label_counts.get_mut(label) {
                        Some(n) => *n += 1,
                        None => {
                            label_counts.insert(label.to_string(), 1);
                        }
                    }
                }
                usable += 1;
            }
            Row::Bad(bad) => {
                if problems.len() < LISTED_PROBLEMS {
                    problems.push(bad);
                }
                problem_count += 1;
            }
        }
    }
    let sampled = sample.rows;
    let mut lengths = match tokenizer {
        Some(tok) => sampled
            .par_iter()
            .map(|(a, b)| Ok(tok.encode(a, b.as_deref(), usize::MAX)?.len()))
            .collect::<Result<Vec<usize>>>()?,
        None => Vec::new(),
    };
    lengths.sort_unstable();
    let label_counts: BTreeMap<String, usize> = label_counts.into_iter().collect();
    Ok(DataPreview {
        path: path.to_path_buf(),
        header,
        columns,
        has_text_b,
        rows: usable,
        first_rows,
        majority_baseline: data::majority_baseline(&label_counts),
        label_counts,
        length_histogram: histogram(&lengths),
        length_percentiles: [50.0, 90.0, 95.0, 99.0, 100.0].map(|p| super::percentile(&lengths, p)),
        problems,
        problem_count,
        sampled_rows: lengths.len(),
    })
}

/// A uniform random sample of at most `capacity` items from a stream of
/// unknown length (Vitter's algorithm R), seeded so a file always previews
/// alike. An item is only built when it enters the sample.
struct Reservoir<T> {
    capacity: usize,
    rows: Vec<T>,
    rng: SmallRng,
}

impl<T> Reservoir<T> {
    fn new(capacity: usize) -> Self {
        Reservoir {
            capacity,
            rows: Vec::with_capacity(capacity),
            rng: SmallRng::seed_from_u64(0x5A4D_9E11),
        }
    }

    /// Offer the `index`-th item (0-based) of the stream.
    fn offer(&mut self, index: usize, item: impl FnOnce() -> T) {
        if self.rows.len() < self.capacity {
            self.rows.push(item());
        } else if self.capacity > 0 {
            let slot = self.rng.random_range(0..=index);
            if slot < self.capacity {
                self.rows[slot] = item();
            }
        }
    }
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
        assert_eq!(p.problem_count, 2);
        assert_eq!(p.label_counts.len(), 2);
        assert!((p.majority_baseline - 0.5).abs() < 1e-12);
        assert_eq!(p.summary(), "counted 2 rows; 2 rows cannot be used");
    }

    #[test]
    fn problems_beyond_the_list_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tsv");
        let mut text = String::from("text_a\tlabel\n");
        for i in 0..LISTED_PROBLEMS + 50 {
            text.push_str(&format!("row {i}\tx\n\ty\n"));
        }
        std::fs::write(&path, text).unwrap();
        let p = preview(&path, None, None).unwrap();
        assert_eq!(p.rows, LISTED_PROBLEMS + 50);
        assert_eq!(p.problem_count, LISTED_PROBLEMS + 50);
        assert_eq!(p.problems.len(), LISTED_PROBLEMS);
        // Lines 3, 5, 7, …: the empty rows between the good ones.
        assert_eq!(p.problems[0].line, 3);
        assert_eq!(
            p.problems[LISTED_PROBLEMS - 1].line,
            2 * LISTED_PROBLEMS + 1
        );
        assert_eq!(p.label_counts["x"], LISTED_PROBLEMS + 50);
        assert!(
            p.summary().ends_with("(the first 200 listed)"),
            "{}",
            p.summary()
        );
    }

    #[test]
    fn the_reservoir_is_a_uniform_sample() {
        // 1,000 draws of 10 from 0..100: each number should be in about 100 of them.
        let mut hits = [0usize; 100];
        for draw in 0..1000u64 {
            let mut r = Reservoir::new(10);
            r.rng = SmallRng::seed_from_u64(draw);
            for i in 0..100 {
                r.offer(i, || i);
            }
            assert_eq!(r.rows.len(), 10);
            for &i in &r.rows {
                hits[i] += 1;
            }
        }
        // Binomial(1000, 0.1): mean 100, sd 9.5; 50..150 is over 5 sd either way.
        assert!(hits.iter().all(|&n| (50..150).contains(&n)), "{hits:?}");
        // Fewer items than room: all of them, in order.
        let mut r = Reservoir::new(10);
        for i in 0..4 {
            r.offer(i, || i);
        }
        assert_eq!(r.rows, vec![0, 1, 2, 3]);
    }
}
