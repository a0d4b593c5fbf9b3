//! A model's fingerprint: SHA-256 over its config, tokenizer and weights
//! files, so that an index knows whether a model is the one that filled it.

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
    let mut buffer = vec![0u8; 1 << 20];
    for name in &names {
        let path = dir.join(name);
        let mut file =
            std::fs::File::open(&path).map_err(|e| BertError::io(Op::Read, &path, &e))?;
        let len = file
            .metadata()
            .map_err(|e| BertError::io(Op::Read, &path, &e))?
            .len();
        hasher.update(name.as_bytes());
        hasher.update(len.to_le_bytes());
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(|e| BertError::io(Op::Read, &path, &e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}
