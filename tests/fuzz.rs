//! Property tests ("fuzzing" on stable Rust): random and mutated files thrown at
//! every reader of files from elsewhere — data files, `config.json`, tokenizers,
//! safetensors and pickle checkpoints. Each must give a value or a `BertError`
//! naming the file: never a panic (which fails the test) or an abort.
//!
//! Inputs that once crashed a reader are kept in `tests/regressions/` and loaded
//! by the plain tests at the end.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use bertscope::checkpoint::{weight_keys, Checkpoint, Weights};
use bertscope::config::BertConfig;
use bertscope::data::{self, Columns, ReadOptions};
use bertscope::tokenize::BertTokenizer;
use candle_core::Device;
use common::{copy_dir, fixture_model};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// Cases per property: the whole file runs in seconds in a debug build. Set
/// `PROPTEST_CASES` for a longer hunt.
const CASES: u32 = 64;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    Config {
        cases,
        // A failing seed is saved here and replayed first on the next run.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/regressions/proptest-seeds.txt",
        ))),
        ..Config::default()
    }
}

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Overwrite(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

/// Bytes that make readers take unusual paths: huge lengths and counts,
/// negative numbers, pickle opcodes with wide arguments, JSON structure.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..8),
        1 => Just(u32::MAX.to_le_bytes().to_vec()),
        1 => Just(u64::MAX.to_le_bytes().to_vec()),
        1 => Just((1u64 << 40).to_le_bytes().to_vec()),
        1 => Just((-1i32).to_le_bytes().to_vec()),
        1 => Just(b"99999999999999999999".to_vec()),
        1 => Just(b"-1".to_vec()),
        1 => Just(vec![0x8a, 0xff]),
        1 => Just(vec![b'X', 0xff, 0xff, 0xff, 0x7f]),
        1 => Just(b"]}{[\"\"".to_vec()),
        1 => Just(vec![0; 3]),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), interesting_bytes()).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
        2 => (any::<usize>(), interesting_bytes()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => (any::<usize>(), 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..5)
}

/// `bytes` with the mutations applied; positions fall within the first `focus`
/// bytes (the headers, where lengths and counts live) when it is given.
fn mutate(bytes: &[u8], edits: &[Mutation], focus: Option<usize>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for edit in edits {
        let span = focus.unwrap_or(out.len()).min(out.len()).max(1);
        match edit {
            Mutation::Overwrite(at, b) => {
                let at = at % span;
                for (i, &byte) in b.iter().enumerate() {
                    if let Some(slot) = out.get_mut(at + i) {
                        *slot = byte;
                    }
                }
            }
            Mutation::Insert(at, b) => {
                let at = (at % span).min(out.len());
                out.splice(at..at, b.iter().copied());
            }
            Mutation::Delete(at, n) => {
                let at = (at % span).min(out.len());
                let end = (at + n).min(out.len());
                out.drain(at..end);
            }
            Mutation::Truncate(at) => out.truncate(at % (out.len() + 1)),
        }
    }
    out
}

/// Ok, or an error whose message names `file`.
fn assert_names<T>(result: bertscope::Result<T>, file: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains(file), "error does not name {file}: {text}");
            None
        }
    }
}

fn read_fixture(model: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixture_model(model).join(file)).unwrap()
}

// ---------------------------------------------------------------- data files

/// Text made of the pieces that matter to a TSV/CSV reader.
fn table_text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\t".to_vec()),
        Just(b",".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"text_a".to_vec()),
        Just(b"text_b".to_vec()),
        Just(b"sentence".to_vec()),
        Just(b"label".to_vec()),
        Just(b"id".to_vec()),
        Just("\u{feff}".as_bytes().to_vec()),
        Just(vec![0xff, 0xfe]),
        "[a-z0-9 ]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
}

fn read_options() -> impl Strategy<Value = ReadOptions> {
    (
        prop_oneof![Just(None), Just(Some(b'\t')), Just(Some(b','))],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(delimiter, require_label, skip_bad_rows, pair)| {
            let mut columns = Columns::default();
            if pair {
                columns.text_a = "sentence".into();
                columns.text_b = Some("text_b".into());
            }
            ReadOptions {
                delimiter,
                columns,
                require_label,
                skip_bad_rows,
            }
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn data_files_never_panic(
        text in table_text(),
        options in read_options(),
        csv in any::<bool>(),
    ) {
        let scratch = tempfile::tempdir().unwrap();
        let name = if csv { "data.csv" } else { "data.tsv" };
        let path = scratch.path().join(name);
        std::fs::write(&path, &text).unwrap();
        assert_names(data::read(&path, &options), name);
        assert_names(data::read_header(&path, options.delimiter), name);
        assert_names(data::read_lines(&path), name);
    }
}

// ---------------------------------------------------------------- config.json

/// A JSON object of config fields with values of any kind and size.
fn config_json() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("hidden_size"),
        Just("num_attention_heads"),
        Just("num_hidden_layers"),
        Just("intermediate_size"),
        Just("vocab_size"),
        Just("max_position_embeddings"),
        Just("type_vocab_size"),
        Just("num_labels"),
        Just("hidden_act"),
        Just("id2label"),
        Just("layer_norm_eps"),
        Just("model_type"),
        Just("position_embedding_type"),
    ];
    let value = prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("1e300".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"gelu\"".to_string()),
        Just("{\"0\": \"a\", \"99999999999\": \"b\"}".to_string()),
        Just("{\"x\": 1}".to_string()),
        Just("null".to_string()),
        Just("[]".to_string()),
    ];
    prop::collection::vec((field, value), 0..10).prop_map(|pairs| {
        let body: Vec<String> = pairs.iter().map(|(f, v)| format!("\"{f}\": {v}")).collect();
        format!("{{{}}}", body.join(",\n"))
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_fields_never_panic(text in config_json()) {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("config.json");
        std::fs::write(&path, &text).unwrap();
        if let Some(config) = assert_names(BertConfig::load(&path), "config.json") {
            // What validation accepts is usable: heads divide the hidden size.
            prop_assert_eq!(config.hidden_size() % config.num_heads(), 0);
            prop_assert!(config.labels.len() <= 1 << 16);
        }
    }

    #[test]
    fn mutated_configs_never_panic(edits in mutations()) {
        let bytes = mutate(&read_fixture("classifier", "config.json"), &edits, None);
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("config.json");
        std::fs::write(&path, bytes).unwrap();
        assert_names(BertConfig::load(&path), "config.json");
    }
}

// ---------------------------------------------------------------- tokenizers

/// Load a tokenizer from `dir` and, when it loads, encode with it.
fn load_and_encode(dir: &Path, names: &[&str]) {
    let result = BertTokenizer::load(dir);
    if let Err(err) = &result {
        let text = err.to_string();
        assert!(
            names.iter().any(|n| text.contains(n)),
            "error names none of {names:?}: {text}"
        );
    }
    if let Ok(tok) = result {
        // Encoding a tokenizer that loaded may fail, but must not panic.
        let _ = tok.encode("The dog [MASK] ran, naïvely 東京!", Some("x y"), 16);
        let _ = tok.decode(&[0, 1, 2, u32::MAX]);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_tokenizer_json_never_panics(edits in mutations(), head in any::<bool>()) {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(&fixture_model("classifier"), scratch.path());
        let original = read_fixture("classifier", "tokenizer.json");
        let bytes = mutate(&original, &edits, head.then_some(512));
        std::fs::write(scratch.path().join("tokenizer.json"), bytes).unwrap();
        load_and_encode(scratch.path(), &["tokenizer.json"]);
    }

    #[test]
    fn mutated_vocab_txt_never_panics(edits in mutations()) {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(&fixture_model("classifier"), scratch.path());
        std::fs::remove_file(scratch.path().join("tokenizer.json")).unwrap();
        let bytes = mutate(&read_fixture("classifier", "vocab.txt"), &edits, None);
        std::fs::write(scratch.path().join("vocab.txt"), bytes).unwrap();
        load_and_encode(scratch.path(), &["vocab.txt"]);
    }

    #[test]
    fn mutated_tokenizer_config_never_panics(edits in mutations()) {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(&fixture_model("classifier"), scratch.path());
        let bytes = mutate(&read_fixture("classifier", "tokenizer_config.json"), &edits, None);
        std::fs::write(scratch.path().join("tokenizer_config.json"), bytes).unwrap();
        // A bad special token is reported against the vocabulary it is missing from.
        load_and_encode(scratch.path(), &["tokenizer_config.json", "tokenizer.json"]);
    }
}

// ---------------------------------------------------------------- checkpoints

/// Open the checkpoint in `dir` and read every tensor it lists, as a model load does.
fn open_and_read_all(dir: &Path, file: &str) {
    assert_names(weight_keys(dir), file);
    let Some(ckpt) = assert_names(Checkpoint::open(dir, &Device::Cpu), file) else {
        return;
    };
    for key in ckpt.keys() {
        let shape = ckpt.shape_of(key).expect("a listed key has a shape");
        assert_names(ckpt.get(key, &shape), file);
    }
}

/// The safetensors header's end: 8 bytes of length, then the JSON.
fn safetensors_header_end(bytes: &[u8]) -> usize {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    8 + len as usize
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_safetensors_never_panic(edits in mutations(), header in any::<bool>()) {
        let original = read_fixture("classifier", "model.safetensors");
        let focus = header.then(|| safetensors_header_end(&original));
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(&fixture_model("classifier"), scratch.path());
        let bytes = mutate(&original, &edits, focus);
        std::fs::write(scratch.path().join("model.safetensors"), bytes).unwrap();
        open_and_read_all(scratch.path(), "model.safetensors");
    }
}

/// The entries of a zip archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (entry.name().unwrap().into_owned(), data)
        })
        .collect()
}

/// A zip archive (stored, as torch writes it) of `entries`.
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(name.as_str(), stored).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The legacy fixture's `pytorch_model.bin` with its `data.pkl` mutated and the
/// archive rebuilt (so the checksums hold and the pickle reader sees the edits).
fn with_mutated_pickle(edits: &[Mutation]) -> Vec<u8> {
    let mut entries = unzip(&read_fixture("pretraining-bin-legacy", "pytorch_model.bin"));
    for (name, data) in &mut entries {
        if name.ends_with("data.pkl") {
            *data = mutate(data, edits, None);
        }
    }
    zip_stored(&entries)
}

fn write_bin(dir: &Path, bytes: &[u8]) {
    copy_dir(&fixture_model("pretraining-bin-legacy"), dir);
    std::fs::write(dir.join("pytorch_model.bin"), bytes).unwrap();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_pickles_never_panic(edits in mutations()) {
        let scratch = tempfile::tempdir().unwrap();
        write_bin(scratch.path(), &with_mutated_pickle(&edits));
        open_and_read_all(scratch.path(), "pytorch_model.bin");
    }

    #[test]
    fn mutated_bin_archives_never_panic(edits in mutations(), head in any::<bool>()) {
        let original = read_fixture("pretraining-bin-legacy", "pytorch_model.bin");
        let scratch = tempfile::tempdir().unwrap();
        write_bin(scratch.path(), &mutate(&original, &edits, head.then_some(8192)));
        open_and_read_all(scratch.path(), "pytorch_model.bin");
    }
}

// ---------------------------------------------------------------- regressions

/// Every `tests/regressions/*.bin` is a `pytorch_model.bin` that once crashed the
/// reader (see `tests/regressions/README.md`); each must now be refused cleanly.
#[test]
fn regression_pickles_are_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        seen += 1;
        let scratch = tempfile::tempdir().unwrap();
        write_bin(scratch.path(), &std::fs::read(&path).unwrap());
        let err = Checkpoint::open(scratch.path(), &Device::Cpu)
            .err()
            .unwrap_or_else(|| panic!("{} loaded", path.display()));
        assert!(
            err.to_string().contains("pytorch_model.bin"),
            "{}: {err}",
            path.display()
        );
        let err = weight_keys(scratch.path()).expect_err("listing refuses it too");
        assert!(err.to_string().contains("pytorch_model.bin"), "{err}");
    }
    assert!(seen > 0, "no regression files in {}", dir.display());
}

/// A `tokenizer.json` cut off inside `"decoder"`: `tokenizers` panicked reading it.
#[test]
fn truncated_tokenizer_json_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&fixture_model("classifier"), scratch.path());
    let regression =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions/truncated-tokenizer.json");
    std::fs::copy(regression, scratch.path().join("tokenizer.json")).unwrap();
    let err = BertTokenizer::load(scratch.path())
        .err()
        .expect("a truncated tokenizer.json is refused");
    let text = err.to_string();
    assert!(text.contains("tokenizer.json:"), "{text}");
    assert!(text.contains("EOF while parsing"), "{text}");
}
