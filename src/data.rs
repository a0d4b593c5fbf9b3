//! Labelled text pairs from a TSV or CSV file with a header: column mapping,
//! quotes, BOM and CRLF, and every problem reported as `file:line: message`.
//!
//! Files are read streaming, one record at a time: [`Rows`] hands out borrowed
//! rows without copying the text, [`read`] keeps one owned copy of each usable
//! row, and [`read_head`] stops after the first rows it needs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{BertError, ColumnRole, Op, Result};

mod records;

use records::{find_cr, Records};

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
        majority_baseline(&self.label_counts())
    }
}

/// Accuracy of always predicting the most frequent of `counts`' labels.
pub fn majority_baseline(counts: &BTreeMap<String, usize>) -> f64 {
    let total: usize = counts.values().sum();
    let top = counts.values().max().copied().unwrap_or(0);
    if total == 0 {
        0.0
    } else {
        top as f64 / total as f64
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

/// Bytes `read_lines` reads per refill: large enough that reading is
/// not dominated by system calls, small next to any file worth streaming.
const READ_BUFFER: usize = 256 * 1024;

/// A file's bytes without a leading UTF-8 BOM, with every CRLF read as LF
/// (inside quoted fields too: a field's line break reads as `\n` whatever
/// the file's line ends).
///
/// The `\r` goes in place, in each buffer the record reader fills, never as a
/// copy of the whole file; the reader then sees one line end, LF, which it
/// counts, so errors name the right line in CRLF files as well.
struct Text<R> {
    inner: R,
    /// Bytes taken from `inner` but not yet handed on: the first bytes of the
    /// file when they are not a BOM, or the byte after a `\r`, read ahead.
    held: Vec<u8>,
    eof: bool,
}

impl<R: Read> Text<R> {
    fn new(mut inner: R) -> io::Result<Self> {
        let mut head = [0u8; 3];
        let mut n = 0;
        while n < head.len() {
            match read_some(&mut inner, &mut head[n..])? {
                0 => break,
                got => n += got,
            }
        }
        let held = if head[..n] == *b"\xEF\xBB\xBF" {
            Vec::new()
        } else {
            head[..n].to_vec()
        };
        Ok(Text {
            inner,
            held,
            eof: n < head.len(),
        })
    }
}

impl<R: Read> Read for Text<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let mut n = self.held.len().min(out.len());
            out[..n].copy_from_slice(&self.held[..n]);
            self.held.drain(..n);
            if n < out.len() && !self.eof {
                match read_some(&mut self.inner, &mut out[n..])? {
                    0 => self.eof = true,
                    got => n += got,
                }
            }
            let mut len = drop_cr_before_lf(&mut out[..n]);
            if len > 0 && out[len - 1] == b'\r' {
                // Whether this CR goes depends on the byte after it: read it ahead.
                if self.held.is_empty() && !self.eof {
                    let mut next = [0u8; 1];
                    match read_some(&mut self.inner, &mut next)? {
                        0 => self.eof = true,
                        _ => self.held.push(next[0]),
                    }
                }
                if self.held.first() == Some(&b'\n') {
                    len -= 1;
                }
            }
            if len > 0 || (self.eof && self.held.is_empty()) {
                return Ok(len);
            }
        }
    }
}

/// One `read`, retried when a signal interrupts it.
fn read_some(reader: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(out) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Remove each `\r` that a `\n` follows, in place; the new length. Runs
/// between carriage returns move as blocks.
fn drop_cr_before_lf(buf: &mut [u8]) -> usize {
    let (mut write, mut read) = (0, 0);
    while let Some(at) = find_cr(&buf[read..]) {
        let cr = read + at;
        let end = if buf.get(cr + 1) == Some(&b'\n') {
            cr
        } else {
            cr + 1
        };
        if write != read {
            buf.copy_within(read..end, write);
        }
        write += end - read;
        read = cr + 1;
    }
    if write != read {
        buf.copy_within(read.., write);
    }
    write + (buf.len() - read)
}

/// Open `path` for streaming text: BOM dropped, CRLF read as LF.
fn open_text(path: &Path) -> Result<Text<File>> {
    let file = File::open(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
    Text::new(file).map_err(|e| BertError::io(Op::Read, path, &e))
}

type Reader = Records<Text<File>>;

/// Open a delimited file (BOM and CRLF handled) and read its header.
fn open(path: &Path, delimiter: Option<u8>) -> Result<(Reader, Vec<String>)> {
    let delimiter = delimiter.unwrap_or_else(|| default_delimiter(path));
    let mut reader = Records::new(open_text(path)?, delimiter);
    let has_header = reader
        .next_record()
        .map_err(|e| BertError::io(Op::Read, path, &e))?;
    let fields = if has_header { reader.len() } else { 0 };
    let header: Vec<String> = (0..fields)
        .map(|i| {
            let raw = reader.get(i).unwrap_or_default();
            String::from_utf8(raw.to_vec()).map(|s| s.trim().to_string())
        })
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

/// One usable row, borrowed from the reader's current record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowText<'r> {
    /// 1-based line of the row in its file.
    pub line: usize,
    pub id: Option<&'r str>,
    pub text_a: &'r str,
    pub text_b: Option<&'r str>,
    pub label: Option<&'r str>,
}

impl RowText<'_> {
    /// An owned copy of the row.
    pub fn to_example(&self) -> Example {
        Example {
            line: self.line,
            id: self.id.map(str::to_string),
            text_a: self.text_a.to_string(),
            text_b: self.text_b.map(str::to_string),
            label: self.label.map(str::to_string),
        }
    }
}

/// What the next record of a file is.
#[derive(Debug, Clone, PartialEq)]
pub enum Row<'r> {
    Usable(RowText<'r>),
    /// A row that cannot be used: its line and the problem.
    Bad(Skipped),
}

/// A data file read one record at a time, holding one record in memory.
pub struct Rows {
    path: PathBuf,
    reader: Reader,
    header: Vec<String>,
    a_col: usize,
    b_col: Option<usize>,
    label_col: Option<usize>,
    id_col: Option<usize>,
    require_label: bool,
}

impl Rows {
    /// Open `path` and map `options.columns` onto its header; a missing column
    /// is an error naming the header's columns.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Rows> {
        let (reader, header) = open(path, options.delimiter)?;
        let find = |name: &str| header.iter().position(|h| h == name);
        let cols = &options.columns;
        let missing = |name: &str, role: ColumnRole| BertError::MissingColumn {
            path: path.to_path_buf(),
            name: name.to_string(),
            role,
            header: header.join(", "),
        };
        let a_col = find(&cols.text_a).ok_or_else(|| missing(&cols.text_a, ColumnRole::TextA))?;
        let b_col = match &cols.text_b {
            Some(name) => Some(find(name).ok_or_else(|| missing(name, ColumnRole::TextB))?),
            None => find("text_b"),
        };
        let label_col = match find(&cols.label) {
            Some(c) => Some(c),
            None if options.require_label => return Err(missing(&cols.label, ColumnRole::Label)),
            None => None,
        };
        let id_col = find(&cols.id);
        Ok(Rows {
            path: path.to_path_buf(),
            reader,
            header,
            a_col,
            b_col,
            label_col,
            id_col,
            require_label: options.require_label,
        })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Whether rows have a sentence B.
    pub fn has_text_b(&self) -> bool {
        self.b_col.is_some()
    }

    /// The next record that is not a blank line, `None` at the end of the
    /// file. Only a failure to read the file is an error; a row that cannot be
    /// used is [`Row::Bad`].
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>> {
        loop {
            let more = self
                .reader
                .next_record()
                .map_err(|e| BertError::io(Op::Read, &self.path, &e))?;
            if !more {
                return Ok(None);
            }
            let line = self.reader.line();
            if self.reader.len() == 1 && self.reader.get(0).is_some_and(<[u8]>::is_empty) {
                continue; // `""` alone on a line, read as a blank line
            }
            return Ok(Some(match self.fields(line) {
                Ok(text) => Row::Usable(text),
                Err(reason) => Row::Bad(Skipped { line, reason }),
            }));
        }
    }

    /// The mapped fields of the current record, trimmed, or what is wrong with it.
    fn fields(&self, line: usize) -> std::result::Result<RowText<'_>, String> {
        let (record, header) = (&self.reader, &self.header);
        if record.len() != header.len() {
            return Err(format!(
                "row has {} fields but the header has {}",
                record.len(),
                header.len()
            ));
        }
        // One UTF-8 check for the whole record; a field on its own only when
        // that fails, to name the column.
        let (text, range) = record.text();
        let field = |col: usize| -> std::result::Result<&str, String> {
            if let Some(text) = text.zip(range(col)).and_then(|(t, (a, b))| t.get(a..b)) {
                return Ok(text.trim());
            }
            let raw = record.get(col).unwrap_or_default();
            std::str::from_utf8(raw)
                .map(str::trim)
                .map_err(|_| format!("column \"{}\" is not valid UTF-8", header[col]))
        };
        let text_a = field(self.a_col)?;
        if text_a.is_empty() {
            return Err(format!("column \"{}\" is empty", header[self.a_col]));
        }
        let text_b = match self.b_col {
            Some(c) => {
                let b = field(c)?;
                if b.is_empty() {
                    return Err(format!("column \"{}\" is empty", header[c]));
                }
                Some(b)
            }
            None => None,
        };
        let label = match self.label_col {
            Some(c) => {
                let l = field(c)?;
                if l.is_empty() && self.require_label {
                    return Err(format!("column \"{}\" is empty", header[c]));
                }
                (!l.is_empty()).then_some(l)
            }
            None => None,
        };
        let id = self.id_col.map(field).transpose()?;
        Ok(RowText {
            line,
            id,
            text_a,
            text_b,
            label,
        })
    }
}

/// Read a labelled (or unlabelled) file.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Dataset> {
    read_rows(path, options, usize::MAX)
}

/// Read the first `max_rows` usable rows of a file and stop: the rest of the
/// file is neither read nor checked.
pub fn read_head(path: &Path, options: &ReadOptions, max_rows: usize) -> Result<Dataset> {
    read_rows(path, options, max_rows)
}

fn read_rows(path: &Path, options: &ReadOptions, max_rows: usize) -> Result<Dataset> {
    let mut rows = Rows::open(path, options)?;
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    while examples.len() < max_rows {
        match rows.next_row()? {
            None => break,
            Some(Row::Usable(text)) => examples.push(text.to_example()),
            Some(Row::Bad(bad)) if options.skip_bad_rows => skipped.push(bad),
            Some(Row::Bad(bad)) => return Err(BertError::line(path, bad.line, bad.reason)),
        }
    }
    // Each text was allocated to fit; only the vector has room to spare.
    examples.shrink_to_fit();
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
        skipped,
        has_text_b: rows.has_text_b(),
    })
}

/// A plain-text file for masked-LM training: one text per non-empty line.
pub fn read_lines(path: &Path) -> Result<Dataset> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, open_text(path)?);
    let mut examples = Vec::new();
    let mut raw = Vec::new();
    for number in 1.. {
        raw.clear();
        let got = reader
            .read_until(b'\n', &mut raw)
            .map_err(|e| BertError::io(Op::Read, path, &e))?;
        if got == 0 {
            break;
        }
        let text = std::str::from_utf8(&raw)
            .map_err(|_| BertError::line(path, number, "not valid UTF-8"))?;
        let text = text.trim();
        if !text.is_empty() {
            examples.push(Example {
                line: number,
                id: None,
                text_a: text.to_string(),
                text_b: None,
                label: None,
            });
        }
    }
    examples.shrink_to_fit();
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
        skipped: Vec::new(),
        has_text_b: false,
    })
}

#[cfg(test)]
mod tests;
