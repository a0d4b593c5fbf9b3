//! Labelled text pairs from a TSV or CSV file with a header: column mapping,
//! quotes, BOM and CRLF, and every problem reported as `file:line: message`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{BertError, Op, Result};

/// One row: sentence A, optional sentence B, label (absent for test files).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// 1-based line of the row in its file.
    pub line: usize,
    pub id: Option<String>,
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: Option<String>,
}

/// Which columns hold what (by header name).
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    pub text_a: String,
    /// `None`: use `text_b` when the file has it (single-sentence tasks otherwise).
    pub text_b: Option<String>,
    pub label: String,
    pub id: String,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            text_a: "text_a".into(),
            text_b: None,
            label: "label".into(),
            id: "id".into(),
        }
    }
}

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Field separator; by default tab for `.tsv`/`.txt`, comma otherwise.
    pub delimiter: Option<u8>,
    pub columns: Columns,
    /// Whether rows must have a label (training and dev files).
    pub require_label: bool,
    /// Drop bad rows (and report them) instead of stopping at the first.
    pub skip_bad_rows: bool,
}

/// A row that was dropped, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub examples: Vec<Example>,
    pub skipped: Vec<Skipped>,
    pub has_text_b: bool,
}

impl Dataset {
    /// Label → count, sorted by label.
    pub fn label_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.examples {
            if let Some(l) = &e.label {
                *counts.entry(l.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Accuracy of always predicting the most frequent label.
    pub fn majority_baseline(&self) -> f64 {
        let counts = self.label_counts();
        let total: usize = counts.values().sum();
        let top = counts.values().max().copied().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            top as f64 / total as f64
        }
    }
}

fn default_delimiter(path: &Path) -> u8 {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("tsv") | Some("txt") | Some("tab") => b'\t',
        _ => b',',
    }
}

type Reader = csv::Reader<std::io::Cursor<Vec<u8>>>;

/// Open a delimited file (BOM and CRLF handled) and read its header.
fn open(path: &Path, delimiter: Option<u8>) -> Result<(Reader, Vec<String>)> {
    let bytes = std::fs::read(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    // CRLF → LF first: the csv crate miscounts lines in CRLF files, and errors
    // must name the right line.
    let body = crlf_to_lf(body);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter.unwrap_or_else(|| default_delimiter(path)))
        .has_headers(true)
        .flexible(true)
        .from_reader(std::io::Cursor::new(body));
    let header = reader
        .byte_headers()
        .map_err(|e| BertError::line(path, 1, format!("cannot read the header: {e}")))?
        .clone();
    let header: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8(h.to_vec()).map(|s| s.trim().to_string()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| BertError::line(path, 1, "the header is not valid UTF-8"))?;
    if header.iter().all(String::is_empty) {
        return Err(BertError::line(
            path,
            1,
            "the file is empty (expected a header row)",
        ));
    }
    Ok((reader, header))
}

/// The column names of a file's header.
pub fn read_header(path: &Path, delimiter: Option<u8>) -> Result<Vec<String>> {
    open(path, delimiter).map(|(_, header)| header)
}

/// Header names that usually hold each field (GLUE, the seed's Kaggle file, …).
const TEXT_A_NAMES: [&str; 9] = [
    "text_a",
    "title1_zh",
    "title1_en",
    "sentence1",
    "premise",
    "question",
    "sentence",
    "text",
    "title",
];
const TEXT_B_NAMES: [&str; 6] = [
    "text_b",
    "title2_zh",
    "title2_en",
    "sentence2",
    "hypothesis",
    "answer",
];
const LABEL_NAMES: [&str; 5] = ["label", "labels", "category", "class", "gold_label"];

/// Guess the column mapping from a header (case-insensitive): the first known
/// name for each field; sentence A falls back to the first column.
pub fn guess_columns(header: &[String]) -> Columns {
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| header.iter().find(|h| h.eq_ignore_ascii_case(n)).cloned())
    };
    let text_a = find(&TEXT_A_NAMES)
        .or_else(|| header.first().cloned())
        .unwrap_or_else(|| "text_a".into());
    Columns {
        text_a,
        text_b: find(&TEXT_B_NAMES),
        label: find(&LABEL_NAMES).unwrap_or_else(|| "label".into()),
        id: find(&["id", "guid", "idx"]).unwrap_or_else(|| "id".into()),
    }
}

/// Read a labelled (or unlabelled) file.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Dataset> {
    let (mut reader, header) = open(path, options.delimiter)?;
    let find = |name: &str| header.iter().position(|h| h == name);
    let cols = &options.columns;
    let missing = |name: &str, flag: &str| {
        BertError::line(
            path,
            1,
            format!(
                "no column \"{name}\" in the header ({}); choose one with {flag}",
                header.join(", ")
            ),
        )
    };
    let a_col = find(&cols.text_a).ok_or_else(|| missing(&cols.text_a, "--text-a-column"))?;
    let b_col = match &cols.text_b {
        Some(name) => Some(find(name).ok_or_else(|| missing(name, "--text-b-column"))?),
        None => find("text_b"),
    };
    let label_col = match find(&cols.label) {
        Some(c) => Some(c),
        None if options.require_label => return Err(missing(&cols.label, "--label-column")),
        None => None,
    };
    let id_col = find(&cols.id);

    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(line);
                let problem = format!("cannot parse the row: {e}");
                if options.skip_bad_rows {
                    skipped.push(Skipped {
                        line,
                        reason: problem,
                    });
                    continue;
                }
                return Err(BertError::line(path, line, problem));
            }
        };
        if !more {
            break;
        }
        let line = record.position().map(|p| p.line() as usize).unwrap_or(line);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // a blank line
        }
        match parse_row(
            &record,
            &header,
            a_col,
            b_col,
            label_col,
            id_col,
            options.require_label,
        ) {
            Ok(row) => examples.push(Example {
                line,
                id: row.0,
                text_a: row.1,
                text_b: row.2,
                label: row.3,
            }),
            Err(problem) if options.skip_bad_rows => skipped.push(Skipped {
                line,
                reason: problem,
            }),
            Err(problem) => return Err(BertError::line(path, line, problem)),
        }
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
        skipped,
        has_text_b: b_col.is_some(),
    })
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// A plain-text file for masked-LM training: one text per non-empty line.
pub fn read_lines(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut examples = Vec::new();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let text = std::str::from_utf8(raw)
            .map_err(|_| BertError::line(path, i + 1, "not valid UTF-8"))?;
        let text = text.trim();
        if !text.is_empty() {
            examples.push(Example {
                line: i + 1,
                id: None,
                text_a: text.to_string(),
                text_b: None,
                label: None,
            });
        }
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
        skipped: Vec::new(),
        has_text_b: false,
    })
}

type Row = (Option<String>, String, Option<String>, Option<String>);

fn parse_row(
    record: &csv::ByteRecord,
    header: &[String],
    a_col: usize,
    b_col: Option<usize>,
    label_col: Option<usize>,
    id_col: Option<usize>,
    require_label: bool,
) -> std::result::Result<Row, String> {
    if record.len() != header.len() {
        return Err(format!(
            "row has {} fields but the header has {}",
            record.len(),
            header.len()
        ));
    }
    let field = |col: usize| -> std::result::Result<String, String> {
        let raw = record.get(col).unwrap_or_default();
        String::from_utf8(raw.to_vec())
            .map(|s| s.trim().to_string())
            .map_err(|_| format!("column \"{}\" is not valid UTF-8", header[col]))
    };
    let text_a = field(a_col)?;
    if text_a.is_empty() {
        return Err(format!("column \"{}\" is empty", header[a_col]));
    }
    let text_b = match b_col {
        Some(c) => {
            let b = field(c)?;
            if b.is_empty() {
                return Err(format!("column \"{}\" is empty", header[c]));
            }
            Some(b)
        }
        None => None,
    };
    let label = match label_col {
        Some(c) => {
            let l = field(c)?;
            if l.is_empty() && require_label {
                return Err(format!("column \"{}\" is empty", header[c]));
            }
            (!l.is_empty()).then_some(l)
        }
        None => None,
    };
    let id = id_col.map(field).transpose()?;
    Ok((id, text_a, text_b, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    fn labelled() -> ReadOptions {
        ReadOptions {
            require_label: true,
            ..Default::default()
        }
    }

    #[test]
    fn guesses_the_seed_kaggle_columns() {
        let header: Vec<String> = [
            "id",
            "tid1",
            "tid2",
            "title1_zh",
            "title2_zh",
            "title1_en",
            "title2_en",
            "label",
        ]
        .map(String::from)
        .to_vec();
        let cols = guess_columns(&header);
        assert_eq!(cols.text_a, "title1_zh");
        assert_eq!(cols.text_b.as_deref(), Some("title2_zh"));
        assert_eq!((cols.label.as_str(), cols.id.as_str()), ("label", "id"));
        let single = guess_columns(&["Review".to_string(), "Category".to_string()]);
        assert_eq!(
            (single.text_a.as_str(), single.text_b, single.label.as_str()),
            ("Review", None, "Category")
        );
    }

    #[test]
    fn reads_quotes_bom_and_crlf() {
        let (_d, p) = write(
            "t.csv",
            "\u{FEFF}id,text_a,text_b,label\r\n7,\"Hello, world\",\"say \"\"hi\"\"\",agreed\r\n8,b,c,unrelated\r\n".as_bytes(),
        );
        let ds = read(&p, &labelled()).unwrap();
        assert_eq!(ds.examples.len(), 2);
        assert_eq!(ds.examples[0].text_a, "Hello, world");
        assert_eq!(ds.examples[0].text_b.as_deref(), Some("say \"hi\""));
        assert_eq!(ds.examples[0].id.as_deref(), Some("7"));
        assert_eq!(ds.examples[1].line, 3);
        assert_eq!(ds.majority_baseline(), 0.5);
    }

    #[test]
    fn renamed_columns_read_the_kaggle_layout() {
        let (_d, p) = write(
            "train.csv",
            "id,tid1,tid2,title1_zh,title2_zh,title1_en,title2_en,label\n1,0,1,甲,乙,a,b,unrelated\n".as_bytes(),
        );
        let mut o = labelled();
        o.columns.text_a = "title1_zh".into();
        o.columns.text_b = Some("title2_zh".into());
        let ds = read(&p, &o).unwrap();
        assert_eq!(ds.examples[0].text_a, "甲");
        assert_eq!(ds.examples[0].text_b.as_deref(), Some("乙"));
    }

    #[test]
    fn problems_name_file_and_line() {
        let (_d, p) = write("t.tsv", b"text_a\tlabel\nfine\tx\n\ty\nragged\tx\textra\n");
        let err = read(&p, &labelled()).unwrap_err().to_string();
        assert!(
            err.ends_with("t.tsv:3: column \"text_a\" is empty"),
            "{err}"
        );

        let mut o = labelled();
        o.skip_bad_rows = true;
        let ds = read(&p, &o).unwrap();
        assert_eq!(ds.examples.len(), 1);
        assert_eq!(
            ds.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(ds.skipped[1]
            .reason
            .contains("3 fields but the header has 2"));

        let (_d, p) = write("u.tsv", b"text_a\tlabel\nok\tx\nbad \xff\tx\n");
        let err = read(&p, &labelled()).unwrap_err().to_string();
        assert!(
            err.ends_with("u.tsv:3: column \"text_a\" is not valid UTF-8"),
            "{err}"
        );

        let (_d, p) = write("v.tsv", b"sentence\tlabel\nok\tx\n");
        let err = read(&p, &labelled()).unwrap_err().to_string();
        assert!(err.contains("v.tsv:1: no column \"text_a\""), "{err}");
        assert!(err.contains("--text-a-column"), "{err}");
    }
}
