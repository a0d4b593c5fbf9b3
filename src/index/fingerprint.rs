//! Fingerprints: SHA-256 over a model's config, tokenizer and weights files,
//! so that an index knows whether a model is the one that filled it, and
//! over a data file, so that a build resumes only over the same rows.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{BertError, Op, Result};

/// Files that decide what a model computes, when present.
const NAMED: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
];
/// Extensions of weights files.
const WEIGHTS: [&str; 4] = ["safetensors", "bin", "pth", "pt"];

/// `sha256:` and the hex digest of `dir`'s model files, each preceded by its
/// name and length.
pub fn of_model(dir: &Path) -> Result<String> {
    let listing = dir
        .read_dir()
        .map_err(|e| BertError::io(Op::List, dir, &e))?;
    let mut names: Vec<String> = listing
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink())
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            NAMED.contains(&name.as_str())
                || Path::new(name)
                    .extension()
                    .is_some_and(|e| WEIGHTS.iter().any(|w| e == *w))
        })
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    for name in &names {
        hasher.update(name.as_bytes());
        add_file(&mut hasher, &dir.join(name))?;
    }
    Ok(hex(hasher))
}

/// `sha256:` and the hex digest of one file (a data file: an index resumes
/// only over the same bytes).
pub fn of_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    add_file(&mut hasher, path)?;
    Ok(hex(hasher))
}

/// The file's length, then its bytes.
fn add_file(hasher: &mut Sha256, path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
    let len = file
        .metadata()
        .map_err(|e| BertError::io(Op::Read, path, &e))?
        .len();
    hasher.update(len.to_le_bytes());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| BertError::io(Op::Read, path, &e))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
    }
}

fn hex(hasher: Sha256) -> String {
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
