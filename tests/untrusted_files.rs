//! Files from elsewhere that lie about their sizes: a checkpoint, config or
//! tokenizer claiming more than it holds must be refused with a message naming
//! the file, before anything that large is allocated.
//!
//! The CLI runs under a 4 GiB address-space limit, so a regression fails at
//! once (an abort, exit 134) instead of eating the machine's memory.

mod common;

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bertscope::checkpoint::{weight_keys, Checkpoint};
use bertscope::config::BertConfig;
use bertscope::tokenize::BertTokenizer;
use candle_core::Device;
use common::{copy_dir, fixture_model};

const ADDRESS_SPACE_LIMIT: libc::rlim_t = 4 << 30;

/// Run the CLI in `cwd` under [`ADDRESS_SPACE_LIMIT`], with only the given
/// Hugging Face cache locations.
fn bertscope_limited(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertscope"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("XDG_CACHE_HOME")
        // Few threads, few malloc arenas: their reservations count against the limit.
        .env("RAYON_NUM_THREADS", "2")
        .env("MALLOC_ARENA_MAX", "2");
    for (key, value) in env {
        cmd.env(key, value);
    }
    // SAFETY: setrlimit is async-signal-safe and only lowers the child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_LIMIT,
                rlim_max: ADDRESS_SPACE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.output().expect("run bertscope")
}

/// Exit code 1 with an `error:` line naming every needle; no abort, no panic.
fn assert_refused(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        None,
        "killed by a signal (allocation abort?): {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    for needle in needles {
        assert!(line.contains(needle), "`{needle}` not in: {line}");
    }
}

/// Pickle opcodes (protocol 2) for a state dict, spelled as `torch.save` writes one.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, code: u8) -> &mut Self {
        self.0.push(code);
        self
    }
    fn text(&mut self, s: &str) -> &mut Self {
        self.op(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn int(&mut self, v: i32) -> &mut Self {
        self.op(b'J');
        self.0.extend(v.to_le_bytes());
        self
    }
    fn int_tuple(&mut self, values: &[i32]) -> &mut Self {
        self.op(b'(');
        for &v in values {
            self.int(v);
        }
        self.op(b't')
    }

    /// `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`
    /// for a float storage `key` of `storage_len` elements.
    fn tensor(&mut self, key: &str, storage_len: i32, shape: &[i32]) -> &mut Self {
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.op(b'(')
            .text("storage")
            .global("torch", "FloatStorage")
            .text(key)
            .text("cpu")
            .int(storage_len)
            .op(b't')
            .op(b'Q');
        self.int(0).int_tuple(shape).int_tuple(&stride).op(0x89);
        self.global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .op(b't')
            .op(b'R')
    }

    /// `{name: tensor, …}` with each tensor in its own storage `"0"`, `"1"`, ….
    fn state_dict(tensors: &[(&str, i32, &[i32])]) -> Vec<u8> {
        let mut p = Pickle::default();
        p.op(0x80).op(2).op(b'}').op(b'(');
        for (i, (name, storage_len, shape)) in tensors.iter().enumerate() {
            p.text(name).tensor(&i.to_string(), *storage_len, shape);
        }
        p.op(b'u').op(b'.');
        p.0
    }
}

/// A zip-format torch checkpoint: `archive/data.pkl` and `archive/data/N` (stored).
fn write_torch_zip(path: &Path, pickle: &[u8], storages: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(pickle).unwrap();
    for (i, bytes) in storages.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.start_file("archive/version", stored).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

/// The legacy `.bin` fixture's config and vocabulary with a `pytorch_model.bin`
/// whose word embeddings claim 100000×1000000 floats (400 GB) over a 16-byte storage.
fn model_with_huge_pickle_claim(dir: &Path) -> PathBuf {
    copy_dir(&fixture_model("pretraining-bin-legacy"), dir);
    let pickle = Pickle::state_dict(&[(
        "bert.embeddings.word_embeddings.weight",
        4,
        &[100_000, 1_000_000],
    )]);
    write_torch_zip(&dir.join("pytorch_model.bin"), &pickle, &[vec![0u8; 16]]);
    dir.to_path_buf()
}

#[test]
fn huge_pickle_claim_is_refused_by_the_cli() {
    let scratch = tempfile::tempdir().unwrap();
    let model = model_with_huge_pickle_claim(&scratch.path().join("bad"));
    let model_arg = model.to_str().unwrap();
    let out = bertscope_limited(
        scratch.path(),
        &["attention", "--model", model_arg, "--text-a", "hi"],
        &[("HOME", scratch.path())],
    );
    assert_refused(
        &out,
        &[
            "pytorch_model.bin",
            "bert.embeddings.word_embeddings.weight",
            "claims 400000000000 bytes",
            "holds 16",
        ],
    );
}

#[test]
fn huge_pickle_claim_is_refused_in_process() {
    let scratch = tempfile::tempdir().unwrap();
    let model = model_with_huge_pickle_claim(scratch.path());
    let err = Checkpoint::open(&model, &Device::Cpu)
        .err()
        .expect("a 400 GB claim over 16 bytes must be refused");
    assert!(err.to_string().contains("pytorch_model.bin"), "{err}");
    let err = weight_keys(&model).expect_err("listing checks the claims too");
    assert!(
        err.to_string().contains("claims 400000000000 bytes"),
        "{err}"
    );
}

#[test]
fn models_lists_good_cache_entries_and_warns_about_a_huge_pickle() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("hub");
    for (repo, make) in [
        ("models--org--good", None),
        (
            "models--org--bad",
            Some(model_with_huge_pickle_claim as fn(&Path) -> PathBuf),
        ),
    ] {
        let snapshot = cache.join(repo).join("snapshots/abc123");
        match make {
            Some(make) => {
                make(&snapshot);
            }
            None => copy_dir(&fixture_model("mlm-safetensors"), &snapshot),
        }
        std::fs::create_dir_all(cache.join(repo).join("refs")).unwrap();
        std::fs::write(cache.join(repo).join("refs/main"), "abc123").unwrap();
    }
    let work = scratch.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = bertscope_limited(
        &work,
        &["models", "--json"],
        &[("HF_HUB_CACHE", &cache), ("HOME", scratch.path())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "killed: {stderr}");
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["org/good"], "stderr: {stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("warning: skipped"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.contains("pytorch_model.bin"), "{warning}");
    assert!(warning.contains("claims"), "{warning}");
}

/// A copy of the safetensors fixture whose `model.safetensors` is `bytes`.
fn model_with_safetensors(dir: &Path, bytes: &[u8]) -> PathBuf {
    copy_dir(&fixture_model("mlm-safetensors"), dir);
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    dir.to_path_buf()
}

#[test]
fn safetensors_header_length_past_the_file_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{\"a\":");
    let model = model_with_safetensors(scratch.path(), &bytes);
    let err = Checkpoint::open(&model, &Device::Cpu)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let err = weight_keys(&model).expect_err("refused");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    let out = bertscope_limited(
        scratch.path(),
        &[
            "attention",
            "--model",
            model.to_str().unwrap(),
            "--text-a",
            "hi",
        ],
        &[("HOME", scratch.path())],
    );
    assert_refused(&out, &["model.safetensors"]);
}

#[test]
fn safetensors_offsets_past_the_file_are_refused() {
    let header = br#"{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[100000,1000000],"data_offsets":[0,400000000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend([0u8; 16]);
    let scratch = tempfile::tempdir().unwrap();
    let model = model_with_safetensors(scratch.path(), &bytes);
    let err = Checkpoint::open(&model, &Device::Cpu)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let err = weight_keys(&model).expect_err("refused");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

/// `config.json` of the classifier fixture with one field replaced.
fn config_with(dir: &Path, field: &str, value: serde_json::Value) -> PathBuf {
    copy_dir(&fixture_model("classifier"), dir);
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config[field] = value;
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

#[test]
fn absurd_config_dimensions_are_refused_naming_the_field() {
    for (field, value) in [
        ("hidden_size", serde_json::json!(1_000_000_000u64)),
        ("vocab_size", serde_json::json!(1_000_000_000_000u64)),
        ("num_hidden_layers", serde_json::json!(1_000_000)),
        ("num_attention_heads", serde_json::json!(1_000_000)),
        ("intermediate_size", serde_json::json!(1_000_000_000u64)),
        (
            "max_position_embeddings",
            serde_json::json!(1_000_000_000u64),
        ),
        ("type_vocab_size", serde_json::json!(1_000_000_000u64)),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let path = config_with(scratch.path(), field, value);
        let err = BertConfig::load(&path).expect_err(field);
        let text = err.to_string();
        assert!(text.contains("config.json"), "{text}");
        assert!(text.contains(&format!("`{field}`")), "{text}");
    }
}

#[test]
fn a_config_whose_weights_would_not_fit_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let path = config_with(scratch.path(), "hidden_size", serde_json::json!(49_152));
    // Each field is within bounds, together 12 layers of 49152² weights are not.
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["intermediate_size"] = serde_json::json!(196_608);
    config["num_hidden_layers"] = serde_json::json!(512);
    config["num_attention_heads"] = serde_json::json!(384);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = BertConfig::load(&path).expect_err("too many parameters");
    assert!(err.to_string().contains("parameters"), "{err}");
}

#[test]
fn hidden_size_not_divisible_by_heads_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let path = config_with(scratch.path(), "num_attention_heads", serde_json::json!(7));
    let err = BertConfig::load(&path).expect_err("32 is not a multiple of 7");
    assert!(err.to_string().contains("`num_attention_heads`"), "{err}");
}

/// Before the limit, 10^12 labels were named `LABEL_i` one by one: out of memory.
#[test]
fn a_huge_label_count_is_refused_by_the_cli() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("m");
    let path = config_with(&dir, "num_labels", serde_json::json!(1_000_000_000_000u64));
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("id2label");
    config.as_object_mut().unwrap().remove("label2id");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = bertscope_limited(
        scratch.path(),
        &[
            "attention",
            "--model",
            dir.to_str().unwrap(),
            "--text-a",
            "hi",
        ],
        &[("HOME", scratch.path())],
    );
    assert_refused(&out, &["config.json", "`num_labels`"]);
}

#[test]
fn oversized_tokenizer_files_are_refused_naming_them() {
    for name in ["vocab.txt", "tokenizer.json"] {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(&fixture_model("classifier"), scratch.path());
        if name == "vocab.txt" {
            std::fs::remove_file(scratch.path().join("tokenizer.json")).unwrap();
        }
        // Sparse: 1 GiB on paper, nothing on disk.
        let file = std::fs::File::create(scratch.path().join(name)).unwrap();
        file.set_len(1 << 30).unwrap();
        let err = BertTokenizer::load(scratch.path())
            .err()
            .expect("a 1 GiB tokenizer file is refused");
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(text.contains("larger than"), "{text}");
    }
}

#[test]
fn an_oversized_config_is_refused_before_reading() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("config.json");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let err = BertConfig::load(&path).expect_err("2 GiB config");
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[test]
fn garbage_tokenizer_files_are_errors_naming_them() {
    for (name, bytes) in [
        (
            "tokenizer.json",
            &b"{\"model\": {\"type\": \"WordPiece\", \"vocab\": 7}}"[..],
        ),
        ("tokenizer.json", &b"\xff\xfe\x00garbage"[..]),
        ("vocab.txt", &b"\xff\xfe\x00garbage"[..]),
        ("vocab.txt", &b""[..]),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(&fixture_model("classifier"), scratch.path());
        std::fs::remove_file(scratch.path().join("tokenizer.json")).unwrap();
        std::fs::write(scratch.path().join(name), bytes).unwrap();
        let err = BertTokenizer::load(scratch.path()).err().expect(name);
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn weight_keys_lists_what_a_load_reads() {
    for name in common::FIXTURE_MODELS {
        let dir = fixture_model(name);
        let ckpt = Checkpoint::open(&dir, &Device::Cpu).unwrap();
        let listed = weight_keys(&dir).unwrap();
        assert_eq!(listed, ckpt.keys(), "{name}");
    }
}
