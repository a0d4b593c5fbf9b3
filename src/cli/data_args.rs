//! The data-file flags `finetune`, `predict`, `explain --head-importance`,
//! `compare --head-importance` and `bench --data` share: which columns hold
//! the texts, label and id, the delimiter, and whether bad rows are skipped.

use anyhow::{bail, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use bertscope::data::{self, Columns, Dataset, ReadOptions};
use bertscope::error::{BertError, ColumnRole};

/// Where the text, label and id columns are, and how to read the files.
#[derive(Args, Clone, Serialize, Deserialize)]
pub struct DataArgs {
    /// Column with the first sentence.
    #[arg(long, default_value = "text_a")]
    text_a_column: String,
    /// Column with the second sentence (default: `text_b` when present).
    #[arg(long)]
    text_b_column: Option<String>,
    #[arg(long, default_value = "label")]
    label_column: String,
    #[arg(long, default_value = "id")]
    id_column: String,
    /// Field separator (default: tab for .tsv, comma otherwise); `\t` for tab.
    #[arg(long)]
    delimiter: Option<String>,
    /// Drop bad rows (and report which) instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

impl DataArgs {
    pub(super) fn options(&self, require_label: bool) -> Result<ReadOptions> {
        Ok(ReadOptions {
            delimiter: parse_delimiter(self.delimiter.as_deref())?,
            columns: Columns {
                text_a: self.text_a_column.clone(),
                text_b: self.text_b_column.clone(),
                label: self.label_column.clone(),
                id: self.id_column.clone(),
            },
            require_label,
            skip_bad_rows: self.skip_bad_rows,
        })
    }

    /// The header of `path`'s id column as the file spells it, or `id` when
    /// the file has none (then rows are numbered from 1).
    pub(super) fn id_header(&self, path: &std::path::Path) -> Result<String> {
        let plain_text = path.extension().is_some_and(|e| e == "txt");
        if !plain_text {
            let delimiter = self.options(false)?.delimiter;
            if data::read_header(path, delimiter)?.contains(&self.id_column) {
                return Ok(self.id_column.clone());
            }
        }
        Ok("id".to_string())
    }

    /// Where an index's rows came from: the file and the columns read.
    pub(super) fn source(&self, ds: &Dataset) -> Result<bertscope::index::DataSource> {
        let has_label = ds.examples.iter().any(|e| e.label.is_some());
        Ok(bertscope::index::DataSource {
            path: bertscope::write_guard::absolute(&ds.path),
            digest: bertscope::index::fingerprint::of_file(&ds.path)?,
            text_a: self.text_a_column.clone(),
            text_b: ds.has_text_b.then(|| {
                self.text_b_column
                    .clone()
                    .unwrap_or_else(|| "text_b".to_string())
            }),
            label: has_label.then(|| self.label_column.clone()),
        })
    }

    /// --delimiter as typed.
    pub(super) fn delimiter_text(&self) -> Option<String> {
        self.delimiter.clone()
    }

    pub(super) fn read(&self, path: &std::path::Path, require_label: bool) -> Result<Dataset> {
        let plain_text = path.extension().is_some_and(|e| e == "txt") && !require_label;
        let ds = if plain_text {
            data::read_lines(path)?
        } else {
            data::read(path, &self.options(require_label)?).map_err(with_column_flag)?
        };
        report_skipped(path, &ds.skipped);
        Ok(ds)
    }
}

/// `--delimiter` as typed: one character, or `\t` / `tab` for a tab.
pub(super) fn parse_delimiter(typed: Option<&str>) -> Result<Option<u8>> {
    Ok(match typed {
        None => None,
        Some("\\t") | Some("tab") => Some(b'\t'),
        Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
        Some(d) => bail!("--delimiter {d:?}: expected one character"),
    })
}

/// The rows a reader left out, on stderr: how many, the first lines, the first reason.
pub(super) fn report_skipped(path: &std::path::Path, skipped: &[data::Skipped]) {
    let Some(first) = skipped.first() else {
        return;
    };
    let lines: Vec<String> = skipped
        .iter()
        .take(20)
        .map(|s| s.line.to_string())
        .collect();
    eprintln!(
        "warning: {}: skipped {} bad rows (lines {}{}); first: {}",
        path.display(),
        skipped.len(),
        lines.join(", "),
        if skipped.len() > 20 { ", …" } else { "" },
        first.reason
    );
}

/// A missing column's error, with the flag that chooses it.
pub(super) fn with_column_flag(e: BertError) -> anyhow::Error {
    let flag = match &e {
        BertError::MissingColumn { role, .. } => match role {
            ColumnRole::TextA => "--text-a-column",
            ColumnRole::TextB => "--text-b-column",
            ColumnRole::Label => "--label-column",
        },
        _ => return e.into(),
    };
    anyhow::anyhow!("{e} with {flag}")
}
