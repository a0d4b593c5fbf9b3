//! Fine-tuning against PyTorch and on its own terms: optimiser steps equal
//! PyTorch's tensor by tensor, every trainable parameter gets a gradient, the
//! same seed gives the same weights, and the CLI's finetune/predict contracts.

mod common;

use std::sync::atomic::AtomicBool;

use bertscope::checkpoint::{Checkpoint, Weights};
use bertscope::tokenize::BertTokenizer;
use bertscope::train::{self, batch_loss, optim::Optim, TrainConfig};
use candle_core::Device;
use common::training::*;
use common::*;

#[test]
fn optimizer_steps_match_pytorch() {
    steps_match_pytorch(None);
}

/// The training loop splits batches into micro-batches on the CPU (so that a
/// cancel is seen quickly) and sums their gradients: still PyTorch's step.
#[test]
fn micro_batched_steps_match_pytorch() {
    steps_match_pytorch(Some(2));
}

fn steps_match_pytorch(micro_batch: Option<usize>) {
    let dir = fixture_model("classifier");
    let steps = read_json(&fixtures().join("train_steps/steps.json"));
    let hp = &steps["hyperparameters"];
    let device = Device::Cpu;
    let t = train::build(&dir, train::Task::Classification, &labels(), 0, &device).unwrap();
    let (rows, targets, pad) = fixture_batch(&dir, &steps);
    let total = hp["total"].as_u64().unwrap() as usize;
    let mut optim = Optim::new(
        t.vars.clone(),
        hp["lr"].as_f64().unwrap(),
        hp["weight_decay"].as_f64().unwrap(),
        hp["warmup"].as_u64().unwrap() as usize,
        total,
        hp["max_grad_norm"].as_f64().unwrap(),
    )
    .unwrap();
    for step in 0..total {
        let per = micro_batch.unwrap_or(rows.len());
        let mut got_loss = 0f64;
        for (r, y) in rows.chunks(per).zip(targets.chunks(per)) {
            let (loss, _) = batch_loss(&t.model, r, y, pad, None).unwrap();
            let share = (loss * (r.len() as f64 / rows.len() as f64)).unwrap();
            got_loss += share.to_scalar::<f32>().unwrap() as f64;
            optim.backward(&share).unwrap();
        }
        let want_loss = steps["losses"][step].as_f64().unwrap();
        assert!(
            (got_loss - want_loss).abs() < 2e-5,
            "step {step}: loss {got_loss} vs {want_loss}"
        );
        let info = optim.step().unwrap();
        let want_norm = steps["grad_norms"][step].as_f64().unwrap();
        assert!(
            (info.grad_norm - want_norm).abs() / want_norm < 1e-4,
            "step {step}: norm {} vs {want_norm}",
            info.grad_norm
        );
        assert!((info.lr - steps["lrs"][step].as_f64().unwrap()).abs() < 1e-12);
    }
    // PyTorch's parameters after the same steps (tests/fixtures/make_fixtures.py).
    let expected = Checkpoint::open(&fixtures().join("train_steps"), &device).unwrap();
    let mut compared = 0;
    let mut failures = Vec::new();
    for v in &t.vars {
        let got = v.var.as_tensor();
        let want = expected.get(&v.name, got.dims()).unwrap();
        let diff = max_abs_diff(
            &got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        // The key bias adds the same amount to every score of a row, which softmax
        // ignores: its exact gradient is zero, and Adam turns the rounding noise
        // (≈1e-9) into ±lr steps in both frameworks. It can only drift by lr·steps.
        let tolerance = if v.name.ends_with("attention.self.key.bias") {
            hp["lr"].as_f64().unwrap() as f32 * total as f32 * 2.0
        } else {
            2e-5
        };
        if diff >= tolerance {
            failures.push(format!("{}: max diff {diff}", v.name));
        }
        compared += 1;
    }
    assert!(failures.is_empty(), "after {total} steps: {failures:#?}");
    assert_eq!(compared, t.vars.len());
    assert!(compared > 30);
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    // A pre-training checkpoint: new classifier head, tied MLM decoder left alone.
    let dir = fixture_model("pretraining-bin-legacy");
    let t = train::build(
        &dir,
        train::Task::Classification,
        &labels(),
        1,
        &Device::Cpu,
    )
    .unwrap();
    assert!(t.vars.iter().all(|v| !v.name.starts_with("cls.")));
    assert!(t
        .all_vars
        .iter()
        .any(|v| v.name.starts_with("cls.predictions")));
    let tok = BertTokenizer::load(&dir).unwrap();
    let rows = vec![
        tok.encode("the dog jumps", Some("over the fox"), 40)
            .unwrap(),
        tok.encode("胖虎叫大雄", None, 40).unwrap(),
    ];
    let dropout = bertscope::model::dropout::TrainDropout::new(3, 0.1, 0.1, 0.1);
    let (loss, _) = batch_loss(&t.model, &rows, &[0, 2], tok.pad_id(), Some(&dropout)).unwrap();
    let grads = loss.backward().unwrap();
    for v in &t.vars {
        let g = grads
            .get(&v.var)
            .unwrap_or_else(|| panic!("{} received no gradient", v.name));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{}: gradient norm {norm}",
            v.name
        );
    }
    // 3 layers × 16 tensors + embeddings (5) + pooler (2) + classifier (2).
    assert_eq!(t.vars.len(), 3 * 16 + 5 + 2 + 2);
}

#[test]
fn same_seed_same_weights() {
    let scratch = tempfile::tempdir().unwrap();
    let data_path = tiny_tsv(scratch.path(), "train.tsv", &ROWS);
    let ds = bertscope::data::read(
        &data_path,
        &bertscope::data::ReadOptions {
            require_label: true,
            ..Default::default()
        },
    )
    .unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 3,
        lr: 1e-3,
        ..Default::default()
    };
    let run = || {
        let never = AtomicBool::new(false);
        train::train(
            &fixture_model("mlm-safetensors"),
            &ds,
            None,
            &cfg,
            &Device::Cpu,
            &mut |_| {},
            &never,
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.tensors.len(), b.tensors.len());
    for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb);
        let (va, vb) = (
            ta.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            tb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(va, vb, "{na} differs between runs with the same seed");
    }
    assert_eq!(a.report.steps, 2);
}

#[test]
fn finetune_then_classify_and_predict() {
    let scratch = tempfile::tempdir().unwrap();
    let train_path = tiny_tsv(scratch.path(), "train.tsv", &ROWS);
    let dev_path = tiny_tsv(scratch.path(), "dev.tsv", &ROWS[..3]);
    let out = scratch.path().join("tuned");
    let base = fixture_model("mlm-safetensors").display().to_string();
    let (t, d, o) = (
        train_path.display().to_string(),
        dev_path.display().to_string(),
        out.display().to_string(),
    );
    let run = bertscope(&[
        "finetune",
        "--model",
        &base,
        "--train",
        &t,
        "--dev",
        &d,
        "--output",
        &o,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--json",
        "--device",
        "cpu",
        "--keep-epochs",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["steps"], 4);
    assert_eq!(report["history"].as_array().unwrap().len(), 4);
    // --keep-epochs: epoch 0 (the base with the new head) and one per epoch,
    // each a loadable checkpoint; no scratch directory left behind.
    for epoch in 0..=2 {
        let e = out.join(format!("epochs/epoch-{epoch}"));
        assert!(
            e.join("model.safetensors").is_file(),
            "{} missing",
            e.display()
        );
        bertscope::LoadedModel::load_dir("e", &e, &Device::Cpu).unwrap();
    }
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        3,
        "only train.tsv, dev.tsv and the output"
    );
    assert_eq!(report["epochs"].as_array().unwrap().len(), 2);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("majority baseline"), "{stderr}");
    assert!(stderr.contains("epoch 2:"), "{stderr}");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "metrics.json",
        "training_args.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["1"], "disagreed");
    assert_eq!(config["label2id"]["unrelated"], 2);
    // The saved file uses transformers' names and keeps the MLM head.
    let saved = Checkpoint::open(&out, &Device::Cpu).unwrap();
    let st = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(st.contains_key("bert.encoder.layer.0.attention.self.query.weight"));
    assert!(st.contains_key("classifier.weight"));
    assert!(st.contains_key("cls.predictions.transform.dense.weight"));
    assert!(!st
        .keys()
        .any(|k| k.starts_with("bert.cls") || k.starts_with("bert.classifier")));
    assert!(saved.contains("pooler.dense.weight"));

    let classify = bertscope(&[
        "classify",
        "--model",
        &o,
        "--text-a",
        "the dog jumps",
        "--text-b",
        "the dog jumps",
        "--json",
    ]);
    assert!(
        classify.status.success(),
        "{}",
        String::from_utf8_lossy(&classify.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&classify.stdout).unwrap();
    let sum: f64 = v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-5);

    let csv = scratch.path().join("preds.csv");
    let c = csv.display().to_string();
    let pred = bertscope(&[
        "predict",
        "--model",
        &o,
        "--input",
        &d,
        "--output",
        &c,
        "--label-header",
        "Category",
    ]);
    assert!(
        pred.status.success(),
        "{}",
        String::from_utf8_lossy(&pred.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,Category,score");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("r0,"));

    // A non-empty output is refused without --overwrite; the base model always.
    let again = bertscope(&[
        "finetune",
        "--model",
        &base,
        "--train",
        &t,
        "--output",
        &o,
        "--max-steps",
        "1",
    ]);
    assert_eq!(again.status.code(), Some(1));
    let again = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.contains("is not empty") && again.contains("pass --overwrite"),
        "{again}"
    );
    let onto_base = bertscope(&[
        "finetune",
        "--model",
        &base,
        "--train",
        &t,
        "--output",
        &base,
        "--overwrite",
    ]);
    let onto_base = String::from_utf8_lossy(&onto_base.stderr);
    assert!(onto_base.contains("is the base model;"), "{onto_base}");
}

#[test]
fn bad_training_data_is_reported_with_file_and_line() {
    let scratch = tempfile::tempdir().unwrap();
    let t = tiny_tsv(scratch.path(), "train.tsv", &ROWS)
        .display()
        .to_string();
    let dev = tiny_tsv(
        scratch.path(),
        "dev.tsv",
        &[("a", "b", "agreed"), ("c", "d", "maybe")],
    )
    .display()
    .to_string();
    let base = fixture_model("mlm-safetensors").display().to_string();
    let o = scratch.path().join("out").display().to_string();
    let run = bertscope(&[
        "finetune", "--model", &base, "--train", &t, "--dev", &dev, "--output", &o,
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("dev.tsv:3: label \"maybe\" does not occur in the training data"),
        "{err}"
    );

    let ragged = scratch.path().join("ragged.tsv");
    std::fs::write(&ragged, "text_a\ttext_b\tlabel\na\tb\tagreed\nc\td\n").unwrap();
    let r = ragged.display().to_string();
    let run = bertscope(&["finetune", "--model", &base, "--train", &r, "--output", &o]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("ragged.tsv:3: row has 2 fields but the header has 3"),
        "{err}"
    );
    let run = bertscope(&[
        "finetune",
        "--model",
        &base,
        "--train",
        &r,
        "--output",
        &o,
        "--skip-bad-rows",
        "--max-steps",
        "1",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("skipped 1 bad rows (lines 3)"));
}

#[test]
fn masked_lm_head_is_added_and_trained() {
    // A bare BertModel: no MLM head, no pooler.
    let dir = fixture_model("base-sharded");
    let t = train::build(&dir, train::Task::Mlm, &[], 5, &Device::Cpu).unwrap();
    assert!(t
        .vars
        .iter()
        .any(|v| v.name == "cls.predictions.transform.dense.weight"));
    assert!(t.vars.iter().all(|v| !v.name.starts_with("pooler.")));
    let tok = BertTokenizer::load(&dir).unwrap();
    let rows = vec![
        tok.encode("the quick brown fox jumps over the lazy dog", None, 40)
            .unwrap(),
        tok.encode(
            "paris is the capital of france",
            Some("a city on a river"),
            40,
        )
        .unwrap(),
    ];
    let mut rng = train::weights::seeded(9);
    let vocab = t.model.config.raw.vocab_size;
    let specials = train::masking::special_ids(&rows, &tok);
    let batch =
        train::masking::mask_batch(&rows, &specials, tok.mask_id().unwrap(), vocab, &mut rng);
    let (loss, _) = train::mlm_loss(&t.model, &batch, tok.pad_id(), None).unwrap();
    let grads = loss.backward().unwrap();
    for v in &t.vars {
        let g = grads
            .get(&v.var)
            .unwrap_or_else(|| panic!("{} received no gradient", v.name));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{}: gradient norm {norm}",
            v.name
        );
    }
}

#[test]
fn finetune_mlm_from_text_lines() {
    let scratch = tempfile::tempdir().unwrap();
    let text = scratch.path().join("corpus.txt");
    std::fs::write(&text, "the quick brown fox jumps over the lazy dog\n\nparis is the capital of france\n北京是中国的首都\n").unwrap();
    let out = scratch.path().join("mlm");
    let base = fixture_model("base-sharded").display().to_string();
    let (t, o) = (text.display().to_string(), out.display().to_string());
    let run = bertscope(&[
        "finetune",
        "--task",
        "mlm",
        "--model",
        &base,
        "--train",
        &t,
        "--dev",
        &t,
        "--output",
        &o,
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("masked-token accuracy") && stderr.contains("perplexity"),
        "{stderr}"
    );
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["architectures"][0], "BertForMaskedLM");
    let st = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(st.contains_key("cls.predictions.transform.dense.weight"));
    assert!(st.contains_key("cls.predictions.bias"));
    assert!(
        !st.contains_key("cls.predictions.decoder.weight"),
        "the decoder stays tied"
    );
    let fill = bertscope(&[
        "fill-mask",
        "--model",
        &o,
        "--text-a",
        "the quick [MASK] fox",
        "--json",
    ]);
    assert!(
        fill.status.success(),
        "{}",
        String::from_utf8_lossy(&fill.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&fill.stdout).unwrap();
    assert_eq!(v["masks"][0]["index"], 3);
}

/// The engine names the missing column's role; the CLI adds its flag.
#[test]
fn a_missing_column_names_the_flag_that_chooses_it() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("t.tsv");
    std::fs::write(&data, "title1\ttitle2\tlabel\na\tb\tagreed\n").unwrap();
    let base = fixture_model("mlm-safetensors").display().to_string();
    let out = scratch.path().join("o").display().to_string();
    let d = data.display().to_string();
    let run = bertscope(&[
        "finetune", "--model", &base, "--train", &d, "--output", &out,
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("t.tsv:1: no column \"text_a\""), "{err}");
    assert!(err.contains("title1, title2, label"), "{err}");
    assert!(err.contains("with --text-a-column"), "{err}");
}

/// Training holds token ids, not the token strings (a copy of the text).
#[test]
fn training_encodings_hold_ids_not_strings() {
    let scratch = tempfile::tempdir().unwrap();
    let path = tiny_tsv(scratch.path(), "t.tsv", &ROWS);
    let options = bertscope::data::ReadOptions {
        require_label: true,
        ..Default::default()
    };
    let data = bertscope::data::read(&path, &options).unwrap();
    let tok = BertTokenizer::load(&fixture_model("mlm-safetensors")).unwrap();
    let enc = train::encode(&tok, &data, &labels(), 40, &AtomicBool::new(false)).unwrap();
    assert_eq!(enc.rows.len(), ROWS.len());
    assert!(enc
        .rows
        .iter()
        .all(|r| r.tokens.is_empty() && !r.input_ids.is_empty()));
    let cls_sep = ["[CLS]", "[SEP]"].map(|t| tok.encode(t, None, 8).unwrap().input_ids[1]);
    for id in cls_sep {
        assert!(
            enc.special_ids.contains(&id),
            "{id} in {:?}",
            enc.special_ids
        );
    }
}

/// Training data is tokenised in parallel batches exactly as row by row; the
/// summary counts a truncated row at its full length; progress reaches the total.
#[test]
fn batch_encoding_equals_row_by_row_with_progress_and_full_lengths() {
    let scratch = tempfile::tempdir().unwrap();
    let long = "the quick brown fox jumps over the lazy dog ".repeat(6);
    let mut text = String::from("id\ttext_a\ttext_b\tlabel\n");
    for i in 0..9_000 {
        let a = if i % 7 == 0 {
            long.as_str()
        } else {
            "the dog jumps"
        };
        let b = [
            "a cat in a cafe",
            "北京是中国的首都",
            "news from paris today",
        ][i % 3];
        text.push_str(&format!("r{i}\trow {i} {a}\t{b}\t{}\n", labels()[i % 3]));
    }
    let path = scratch.path().join("many.tsv");
    std::fs::write(&path, text).unwrap();
    let options = bertscope::data::ReadOptions {
        require_label: true,
        ..Default::default()
    };
    let data = bertscope::data::read(&path, &options).unwrap();
    let dir = fixture_model("mlm-safetensors");
    let tok = BertTokenizer::load(&dir).unwrap();
    let never = AtomicBool::new(false);
    let max_length = 24;
    let enc = train::encode(&tok, &data, &labels(), max_length, &never).unwrap();
    let mut full_lengths = Vec::new();
    for (e, row) in data.examples.iter().zip(&enc.rows) {
        let one = tok
            .encode(&e.text_a, e.text_b.as_deref(), max_length)
            .unwrap();
        assert_eq!(
            (&row.input_ids, &row.token_type_ids, row.truncated),
            (&one.input_ids, &one.token_type_ids, one.truncated),
            "line {}",
            e.line
        );
        full_lengths.push(
            tok.encode(&e.text_a, e.text_b.as_deref(), usize::MAX)
                .unwrap()
                .len(),
        );
    }
    let cfg = TrainConfig {
        epochs: 1,
        max_steps: Some(1),
        max_length,
        ..Default::default()
    };
    let (mut summary, mut progress) = (None, Vec::new());
    let mut on_event = |event| match event {
        train::Event::Summary(s) => summary = Some(s),
        train::Event::Tokenizing { done, total } => progress.push((done, total)),
        _ => {}
    };
    train::train(&dir, &data, None, &cfg, &Device::Cpu, &mut on_event, &never).unwrap();
    let summary = summary.expect("a data summary");
    let longer = full_lengths.iter().filter(|&&l| l > max_length).count();
    assert!(longer > 1_000, "{longer} rows longer than {max_length}");
    assert_eq!(summary.truncated, longer);
    assert_eq!(
        summary.length_percentiles[4],
        *full_lengths.iter().max().unwrap()
    );
    assert!(progress.len() > 1, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(progress.last(), Some(&(9_000, 9_000)));
}

/// The classifier fixture built for training, and its tokenizer.
fn classifier_fixture() -> (train::Trainable, BertTokenizer) {
    let dir = fixture_model("classifier");
    let t = train::build(
        &dir,
        train::Task::Classification,
        &labels(),
        0,
        &Device::Cpu,
    );
    (t.unwrap(), BertTokenizer::load(&dir).unwrap())
}

/// A cancel lands inside a backward pass: the fused linear layers are cancel
/// points, so a step stops within a layer, not at the end of its micro-batch.
#[test]
fn a_cancel_stops_a_backward_pass_midway() {
    let (t, tok) = classifier_fixture();
    let rows = vec![tok.encode("the dog jumps", Some("the fox"), 40).unwrap(); 4];
    let mut optim = Optim::new(t.vars.clone(), 1e-3, 0.01, 0, 10, 1.0).unwrap();
    let flag = AtomicBool::new(false);
    use bertscope::model::cancel::watching;
    let (loss, _) = watching(&flag, || {
        batch_loss(&t.model, &rows, &[0, 1, 2, 0], tok.pad_id(), None)
    })
    .unwrap();
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = watching(&flag, || optim.backward(&loss)).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    // Not watched (or not set), the same backward pass runs to the end.
    optim.backward(&loss).unwrap();
    assert!(optim.step().unwrap().grad_norm > 0.0);
}

/// A classifier's training forward computes its last layer at `[CLS]` only:
/// the loss and every gradient equal the full forward's.
#[test]
fn the_cls_only_last_layer_gives_the_full_forwards_gradients() {
    let (t, tok) = classifier_fixture();
    let rows: Vec<_> = ROWS
        .iter()
        .map(|(a, b, _)| tok.encode(a, Some(b), 40).unwrap())
        .collect();
    let targets: Vec<u32> = (0..rows.len() as u32).map(|i| i % 3).collect();
    let targets_t = candle_core::Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
    let input = bertscope::model::ModelInput::batch(&rows, tok.pad_id());
    let out = t.model.encode_train(&input, None).unwrap();
    let logits = t
        .model
        .classify_logits_train(&out, &input.mask, None)
        .unwrap();
    let full = candle_nn::loss::cross_entropy(&logits, &targets_t).unwrap();
    let classes: Vec<usize> = targets.iter().map(|&c| c as usize).collect();
    let (pruned, _) = batch_loss(&t.model, &rows, &classes, tok.pad_id(), None).unwrap();
    let (lf, lp) = (
        full.to_scalar::<f32>().unwrap(),
        pruned.to_scalar::<f32>().unwrap(),
    );
    assert!((lf - lp).abs() < 1e-6, "loss {lf} vs {lp}");
    let (gf, gp) = (full.backward().unwrap(), pruned.backward().unwrap());
    for v in &t.vars {
        let values = |g: &candle_core::backprop::GradStore| {
            g.get(&v.var)
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        };
        let (a, b) = (values(&gf), values(&gp));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("{}: a gradient on one path only", v.name);
        };
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        // A key bias's exact gradient is zero (softmax ignores a constant per
        // row): both paths give rounding noise there, hence the floor.
        assert!(
            max_abs_diff(&a, &b) <= (1e-5 * scale).max(1e-7),
            "{}: {} (largest {scale})",
            v.name,
            max_abs_diff(&a, &b)
        );
    }
}
