//! Fine-tuning fixtures shared by `tests/train.rs` and `tests/precision.rs`:
//! the labels and batch of `tests/fixtures/train_steps*`, tiny data files.

use std::path::{Path, PathBuf};

use bertscope::tokenize::{BertTokenizer, Encoded};
use serde_json::Value;

pub fn labels() -> Vec<String> {
    ["agreed", "disagreed", "unrelated"]
        .map(String::from)
        .to_vec()
}

/// The fixture's batch, encoded, its class indices and the pad id.
pub fn fixture_batch(dir: &Path, steps: &Value) -> (Vec<Encoded>, Vec<usize>, u32) {
    let tok = BertTokenizer::load(dir).unwrap();
    let batch = steps["batch"].as_array().unwrap();
    let rows: Vec<_> = batch
        .iter()
        .map(|r| {
            tok.encode(r[0].as_str().unwrap(), r[1].as_str(), 40)
                .unwrap()
        })
        .collect();
    let targets: Vec<usize> = batch
        .iter()
        .map(|r| {
            labels()
                .iter()
                .position(|l| l == r[2].as_str().unwrap())
                .unwrap()
        })
        .collect();
    (rows, targets, tok.pad_id())
}

/// A TSV of `rows` (`text_a`, `text_b`, `label`) with ids `r0`, `r1`, …
pub fn tiny_tsv(dir: &Path, name: &str, rows: &[(&str, &str, &str)]) -> PathBuf {
    let mut text = String::from("id\ttext_a\ttext_b\tlabel\n");
    for (i, (a, b, l)) in rows.iter().enumerate() {
        text.push_str(&format!("r{i}\t{a}\t{b}\t{l}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Six labelled pairs, two per label, English and Chinese.
pub const ROWS: [(&str, &str, &str); 6] = [
    ("the dog jumps", "the dog jumps", "agreed"),
    ("the fox is lazy", "the fox is not lazy", "disagreed"),
    ("news from paris", "a cat in a cafe", "unrelated"),
    ("北京是中国的首都", "北京是中国的首都", "agreed"),
    ("the river is wide", "the river is not wide", "disagreed"),
    (
        "the man went to buy a book",
        "the animal is tired",
        "unrelated",
    ),
];
