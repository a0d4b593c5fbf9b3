//! An index's folder on disk: `index.json` (what it holds and how far it
//! got), `rows.jsonl` (each row's text and label), `tokens.bin` (which row
//! and position each stored vector is, with its character offsets) and one
//! `layer-L.f16` file of vectors per stored layer.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BertError, Op, Result};
use crate::model::precision::Precision;

/// The value of `format` in `index.json`.
pub const FORMAT: &str = "bertscope-index";
/// The layout version this build writes and reads.
pub const VERSION: u32 = 1;
pub const MANIFEST: &str = "index.json";
pub const ROWS: &str = "rows.jsonl";
pub const TOKENS: &str = "tokens.bin";
/// Bytes of one `tokens.bin` record.
pub const TOKEN_RECORD: usize = 16;

/// The file of one layer's vectors.
pub fn layer_file(layer: usize) -> String {
    format!("layer-{layer}.f16")
}

/// Where the index's rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub path: PathBuf,
    /// SHA-256 of the file: a build resumes only over the same bytes.
    pub digest: String,
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: Option<String>,
}

/// The model that computed the vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSource {
    /// As the user named it (folder or Hub id).
    pub name: String,
    /// The folder it was loaded from.
    pub dir: PathBuf,
    /// SHA-256 of its config, tokenizer and weights files.
    pub fingerprint: String,
    pub hidden: usize,
    pub num_layers: usize,
}

/// `index.json`: what the index holds. `rows`/`tokens` count what is
/// written and synced; a build that stopped resumes from there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub model: ModelSource,
    pub data: DataSource,
    /// Stored layers, ascending (0: the embeddings' output).
    pub layers: Vec<usize>,
    pub max_length: usize,
    /// Always `"f16"`: IEEE half precision, little-endian, `[token][hidden]`.
    pub dtype: String,
    /// The precision of the model's products that computed the vectors
    /// (`index --precision`); searches compute their query the same way.
    /// Indexes written before the field existed are fp32.
    #[serde(default)]
    pub precision: Precision,
    /// Rows of the data the build covers (after `--max-rows`).
    pub rows_total: usize,
    /// Rows written so far, in file order.
    pub rows: usize,
    /// Token vectors written so far (per layer).
    pub tokens: usize,
    /// Bytes of `rows.jsonl` written so far.
    pub rows_bytes: u64,
    pub complete: bool,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text =
            std::fs::read_to_string(&path).map_err(|e| BertError::io(Op::Read, &path, &e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| BertError::file(&path, format!("not a bertscope index manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(BertError::file(
                &path,
                format!("field `format` is {:?}, not {FORMAT:?}", manifest.format),
            ));
        }
        if manifest.version != VERSION {
            return Err(BertError::file(
                &path,
                format!(
                    "field `version` is {}; this bertscope reads version {VERSION}",
                    manifest.version
                ),
            ));
        }
        Ok(manifest)
    }

    /// Write `index.json` through a synced temporary file and a rename.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| BertError::file(&path, format!("cannot serialise: {e}")))?;
        crate::write_guard::write_file_atomically(&path, |w| w.write_all(&json))
    }

    /// Bytes one token's vectors take over every stored layer.
    pub fn bytes_per_token(&self) -> usize {
        2 * self.model.hidden * self.layers.len()
    }

    /// Whether `layer` is stored; else a message listing the stored ones.
    pub fn check_layer(&self, layer: usize) -> Result<()> {
        if self.layers.contains(&layer) {
            return Ok(());
        }
        let stored: Vec<String> = self.layers.iter().map(|l| l.to_string()).collect();
        Err(BertError::Input(format!(
            "layer {layer} is not in the index (it stores layers {})",
            stored.join(", ")
        )))
    }
}

/// One row as `rows.jsonl` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowRecord {
    /// 0-based data row, header excluded.
    pub row: usize,
    /// 1-based line in the data file.
    pub line: usize,
    pub text_a: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// One stored vector's place: its row, its position in the row as the
/// model sees it (0 is `[CLS]`), its sentence (0: A, 1: B) and its
/// character range in that sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRecord {
    pub row: u32,
    pub token_index: u16,
    pub segment: u8,
    pub chars: (u32, u32),
}

impl TokenRecord {
    pub fn to_bytes(self) -> [u8; TOKEN_RECORD] {
        let mut b = [0u8; TOKEN_RECORD];
        b[0..4].copy_from_slice(&self.row.to_le_bytes());
        b[4..6].copy_from_slice(&self.token_index.to_le_bytes());
        b[6] = self.segment;
        b[8..12].copy_from_slice(&self.chars.0.to_le_bytes());
        b[12..16].copy_from_slice(&self.chars.1.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> TokenRecord {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        TokenRecord {
            row: u32_at(0),
            token_index: u16::from_le_bytes([b[4], b[5]]),
            segment: b[6],
            chars: (u32_at(8), u32_at(12)),
        }
    }
}

/// Every token record of a complete index.
pub fn read_tokens(dir: &Path, manifest: &Manifest) -> Result<Vec<TokenRecord>> {
    let path = dir.join(TOKENS);
    let bytes = read_exact_len(&path, manifest.tokens * TOKEN_RECORD)?;
    Ok(bytes
        .chunks_exact(TOKEN_RECORD)
        .map(TokenRecord::from_bytes)
        .collect())
}

/// Every row record, in row order.
pub fn read_rows(dir: &Path, manifest: &Manifest) -> Result<Vec<RowRecord>> {
    let path = dir.join(ROWS);
    let bytes = read_exact_len(&path, manifest.rows_bytes as usize)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| BertError::file(&path, "is not UTF-8; rebuild the index"))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                BertError::line(
                    &path,
                    i + 1,
                    format!("not a row record: {e}; rebuild the index"),
                )
            })
        })
        .collect()
}

/// The first `len` bytes of `path`: an error when it holds fewer.
pub fn read_exact_len(path: &Path, len: usize) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
    let mut bytes = Vec::with_capacity(len);
    file.take(len as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| BertError::io(Op::Read, path, &e))?;
    if bytes.len() < len {
        return Err(BertError::file(
            path,
            format!(
                "holds {} bytes where index.json promises {len}; rebuild the index",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// `Ok` when `dir` holds a bertscope index and nothing else (so it may be
/// resumed or replaced); else why not.
pub fn ours(dir: &Path) -> std::result::Result<Manifest, String> {
    let allowed = |name: &str| {
        [MANIFEST, ROWS, TOKENS].contains(&name)
            || (name.starts_with("layer-") && name.ends_with(".f16"))
            || name.contains(".bertscope-tmp-")
    };
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    let mut strangers = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy().into_owned();
        if !allowed(&name) {
            strangers.push(name);
        }
    }
    strangers.sort();
    if let Some(first) = strangers.first() {
        let more = match strangers.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return Err(format!("it holds {first}{more}, which an index does not"));
    }
    Manifest::read(dir).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_records_round_trip() {
        let r = TokenRecord {
            row: 70_000,
            token_index: 511,
            segment: 1,
            chars: (3, 123_456),
        };
        assert_eq!(TokenRecord::from_bytes(&r.to_bytes()), r);
    }

    /// An index written before `precision` was recorded (every such build
    /// ran fp32) still opens, as fp32; a bf16 one reads back as bf16.
    #[test]
    fn manifests_without_a_precision_are_fp32() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"format": "bertscope-index", "version": 1,
            "model": {"name": "m", "dir": "/m", "fingerprint": "sha256:1", "hidden": 4, "num_layers": 1},
            "data": {"path": "/d.tsv", "digest": "sha256:2", "text_a": "text_a", "text_b": null, "label": null},
            "layers": [0], "max_length": 128, "dtype": "f16", "rows_total": 1, "rows": 1,
            "tokens": 1, "rows_bytes": 0, "complete": true}"#;
        std::fs::write(dir.path().join(MANIFEST), old).unwrap();
        let mut manifest = Manifest::read(dir.path()).unwrap();
        assert_eq!(manifest.precision, Precision::Fp32);
        manifest.precision = Precision::Bf16;
        manifest.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap();
        assert!(text.contains(r#""precision": "bf16""#), "{text}");
        assert_eq!(
            Manifest::read(dir.path()).unwrap().precision,
            Precision::Bf16
        );
    }
}
