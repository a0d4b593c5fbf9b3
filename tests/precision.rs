//! `--precision bf16`: checked against PyTorch taking the same products on
//! bf16-rounded operands (`tests/fixtures/make_bf16_fixture.py`), and end to
//! end through the CLI. On a CPU without AVX-512-BF16 the kernel cannot run:
//! the gradient test says so, the CLI test checks the refusal instead.

mod common;

use bertscope::checkpoint::{Checkpoint, Weights};
use bertscope::model::precision::{self, Precision};
use bertscope::train::{self, batch_loss};
use candle_core::Device;
use common::training::*;
use common::*;

/// `--precision bf16`: the loss and every parameter's gradient against
/// PyTorch with each linear layer's products (forward, and both of the
/// backward) taken on operands rounded to bf16 with f32 sums
/// (`tests/fixtures/make_bf16_fixture.py`), whole and in micro-batches.
#[test]
fn bf16_gradients_match_pytorch_with_bf16_products() {
    if !bertscope::model::grad_kernels::bf16_available() {
        eprintln!("this CPU has no AVX-512-BF16: bf16 training cannot run here, not checked");
        return;
    }
    let dir = fixture_model("classifier");
    let fixture = fixtures().join("train_steps_bf16");
    let steps = read_json(&fixture.join("steps.json"));
    let device = Device::Cpu;
    let expected = Checkpoint::open(&fixture, &device).unwrap();
    let fp32_steps = read_json(&fixtures().join("train_steps/steps.json"));
    for micro_batch in [None, Some(2)] {
        let t = train::build(&dir, train::Task::Classification, &labels(), 0, &device).unwrap();
        let (rows, targets, pad) = fixture_batch(&dir, &steps);
        let per = micro_batch.unwrap_or(rows.len());
        let mut loss_sum = 0f64;
        let mut grads: Vec<Option<Vec<f32>>> = vec![None; t.vars.len()];
        for (r, y) in rows.chunks(per).zip(targets.chunks(per)) {
            let g = precision::scoped(Precision::Bf16, || {
                let (loss, _) = batch_loss(&t.model, r, y, pad, None).unwrap();
                let share = (loss * (r.len() as f64 / rows.len() as f64)).unwrap();
                loss_sum += share.to_scalar::<f32>().unwrap() as f64;
                share.backward().unwrap()
            });
            for (sum, v) in grads.iter_mut().zip(&t.vars) {
                let part = g
                    .get(v.var.as_tensor())
                    .expect("every parameter gets a gradient");
                let part = part.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                match sum {
                    Some(s) => s.iter_mut().zip(&part).for_each(|(a, b)| *a += b),
                    None => *sum = Some(part),
                }
            }
        }
        let want = steps["losses"][0].as_f64().unwrap();
        let fp32 = fp32_steps["losses"][0].as_f64().unwrap();
        // The bf16 products move the loss by ~1e-3 here; the two bf16 sides agree
        // to ~3e-5 (their f32 sums run in different orders).
        assert!((loss_sum - want).abs() < 1e-4, "loss {loss_sum} vs {want}");
        assert!(
            (loss_sum - fp32).abs() > 1e-4,
            "bf16 products change the loss"
        );
        let mut failures = Vec::new();
        for (v, got) in t.vars.iter().zip(&grads) {
            let got = got.as_ref().unwrap();
            let want = expected.get(&v.name, v.var.dims()).unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let diff = max_abs_diff(got, &want);
            if diff > 2e-2 * scale + 1e-7 {
                failures.push(format!("{}: max diff {diff} of {scale}", v.name));
            }
        }
        assert!(failures.is_empty(), "{micro_batch:?}: {failures:#?}");
    }
}

/// Batched inference under bf16 (`bench --inference --precision bf16`, the
/// dataset passes' forward): the encoder's last hidden state against
/// PyTorch's with the same bf16 products (`make_bf16_fixture.py`), on the
/// fixture batch's real tokens. The bias and GELU ride in the bf16 kernel's
/// epilogue here, so a missing or doubled one shows.
#[test]
fn bf16_inference_matches_pytorch_with_bf16_products() {
    if !bertscope::model::grad_kernels::bf16_available() {
        eprintln!("skipped: this CPU has no bf16 products, so bf16 inference cannot run here");
        return;
    }
    let dir = fixture_model("classifier");
    let steps = read_json(&fixtures().join("train_steps_bf16/steps.json"));
    let (rows, _, pad) = fixture_batch(&dir, &steps);
    let input = bertscope::model::ModelInput::batch(&rows, pad);
    check_bf16_inference(&dir, &input, &steps);
}

/// The same on a model of odd shapes (`bf16_odd/`, from
/// `make_bf16_fixture.py`): heads 9 values wide (a head's context is not
/// whole bf16 pairs, so it goes through f32 before its rounding), an
/// intermediate layer 69 wide (odd columns written as bf16 rows, odd `k`
/// read from them), rows of different lengths.
#[test]
fn bf16_inference_matches_pytorch_on_odd_shapes() {
    if !bertscope::model::grad_kernels::bf16_available() {
        eprintln!("skipped: this CPU has no bf16 products, so bf16 inference cannot run here");
        return;
    }
    let dir = fixtures().join("bf16_odd");
    let expected = read_json(&dir.join("expected.json"));
    let ids = |key: &str| -> Vec<Vec<u32>> {
        let rows = expected[key].as_array().unwrap();
        rows.iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect()
    };
    let (input_ids, mask) = (ids("input_ids"), ids("attention_mask"));
    let rows: Vec<bertscope::tokenize::Encoded> = input_ids
        .iter()
        .zip(&mask)
        .map(|(ids, keep)| {
            let len = keep.iter().filter(|&&k| k == 1).count();
            bertscope::tokenize::Encoded {
                tokens: Vec::new(),
                input_ids: ids[..len].to_vec(),
                token_type_ids: vec![0; len],
                truncated: false,
            }
        })
        .collect();
    let input = bertscope::model::ModelInput::batch(&rows, 0);
    assert_eq!(
        input.mask.seq,
        input_ids[0].len(),
        "padded as PyTorch's batch"
    );
    check_bf16_inference(&dir, &input, &expected);
}

/// The last hidden state of `input` under bf16 against `expected`'s
/// `last_hidden_state` (PyTorch with bf16 products) on the tokens its
/// `attention_mask` keeps, with the fp32 forward's distance as the scale.
fn check_bf16_inference(
    dir: &std::path::Path,
    input: &bertscope::model::ModelInput,
    expected: &serde_json::Value,
) {
    let model = bertscope::LoadedModel::load(dir.to_str().unwrap(), &Device::Cpu).unwrap();
    let layers = model.config().num_layers();
    let last = |precision| {
        let mut kept = Vec::new();
        precision::scoped(precision, || {
            model
                .model
                .hidden_states(input, layers, &mut |layer, states| {
                    if layer == layers {
                        kept = states.to_vec();
                    }
                    Ok(())
                })
        })
        .unwrap();
        kept
    };
    let bf16 = last(Precision::Bf16);
    // The model keeps a forward's buffers for the next: a second bf16
    // forward starts from its own input, not from the rows the last left.
    assert_eq!(last(Precision::Bf16), bf16, "a repeated bf16 forward");
    let fp32 = last(Precision::Fp32);
    let want = expected["last_hidden_state"].as_array().unwrap();
    let mask = expected["attention_mask"].as_array().unwrap();
    let hidden = bf16.len() / (want.len() * input.mask.seq);
    let (mut worst, mut moved) = (0f64, 0f64);
    let (mut off, mut fp32_off) = (Vec::new(), Vec::new());
    for (b, row) in want.iter().enumerate() {
        for (t, values) in row.as_array().unwrap().iter().enumerate() {
            if mask[b][t].as_i64() != Some(1) {
                continue;
            }
            let at = (b * input.mask.seq + t) * hidden;
            for (h, w) in values.as_array().unwrap().iter().enumerate() {
                let w = w.as_f64().unwrap();
                let d = (f64::from(bf16[at + h]) - w).abs();
                worst = worst.max(d);
                off.push(d);
                fp32_off.push((f64::from(fp32[at + h]) - w).abs());
                moved = moved.max((f64::from(fp32[at + h]) - w).abs());
            }
        }
    }
    // Hidden states are layer-normed (values of order 1). Most values are
    // PyTorch's to f32 precision; the two bf16 sides sum in different
    // orders, which now and then tips an operand's rounding to bf16 the
    // other way, and a token's row downstream of it moves by a fraction of
    // what bf16 moves it. The fp32 forward is off everywhere.
    off.sort_by(f64::total_cmp);
    fp32_off.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ours, theirs) = (
        (median(&off), mean(&off)),
        (median(&fp32_off), mean(&fp32_off)),
    );
    assert!(
        ours.0 < 1e-5,
        "median difference {} (fp32's {})",
        ours.0,
        theirs.0
    );
    assert!(
        ours.1 < 0.15 * theirs.1,
        "mean difference {} (fp32's {})",
        ours.1,
        theirs.1
    );
    assert!(
        worst < 0.5 * moved,
        "largest difference {worst} (fp32's {moved})"
    );
}

/// On a CPU without bf16 products: asserts that a `--precision bf16` run
/// was refused with a message naming the flag and the instructions, and
/// says so (the caller then checks that nothing was written). Elsewhere
/// `false`.
fn refused_for_want_of_bf16(run: &std::process::Output) -> bool {
    if bertscope::model::grad_kernels::bf16_available() {
        return false;
    }
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("--precision bf16") && stderr.contains("AVX-512-BF16"),
        "{stderr}"
    );
    true
}

/// `finetune --precision bf16` trains, says so, records it with the run's
/// settings, and the model it saves classifies; on a CPU without
/// AVX-512-BF16 it refuses before writing anything, naming the flag.
#[test]
fn finetune_in_bf16_records_its_precision() {
    let scratch = tempfile::tempdir().unwrap();
    let train_path = tiny_tsv(scratch.path(), "train.tsv", &ROWS);
    let out = scratch.path().join("tuned");
    let base = fixture_model("mlm-safetensors").display().to_string();
    let (t, o) = (train_path.display().to_string(), out.display().to_string());
    let run = bertscope(&[
        "finetune",
        "--model",
        &base,
        "--train",
        &t,
        "--output",
        &o,
        "--epochs",
        "2",
        "--batch-size",
        "3",
        "--lr",
        "1e-3",
        "--precision",
        "bf16",
        "--dev-fraction",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if refused_for_want_of_bf16(&run) {
        assert!(!out.exists() && !scratch.path().join("tuned.partial").exists());
        return;
    }
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("bf16 products"), "{stderr}");
    let args = read_json(&out.join("training_args.json"));
    assert_eq!(args["precision"], "bf16");
    let classify = bertscope(&[
        "classify",
        "--model",
        &o,
        "--text-a",
        "the dog jumps",
        "--json",
    ]);
    assert!(
        classify.status.success(),
        "{}",
        String::from_utf8_lossy(&classify.stderr)
    );
    let bad = bertscope(&[
        "finetune",
        "--model",
        &base,
        "--train",
        &t,
        "--output",
        &o,
        "--precision",
        "fp16",
    ]);
    assert!(!bad.status.success(), "only fp32 and bf16 exist");
}

/// `predict --precision bf16` classifies a file with bf16 products: the
/// labels of the fp32 run, the scores within bf16's rounding, and a line
/// that says whether bf16 pays on this CPU; where the CPU has no bf16
/// products it refuses, naming the flag, and writes nothing.
#[test]
fn predict_in_bf16_gives_the_fp32_labels() {
    let scratch = tempfile::tempdir().unwrap();
    let input = tiny_tsv(scratch.path(), "test.tsv", &ROWS);
    let model = fixture_model("classifier").display().to_string();
    let input = input.display().to_string();
    let run = |precision: &str| {
        let csv = scratch.path().join(format!("{precision}.csv"));
        let out = bertscope(&[
            "predict",
            "--model",
            &model,
            "--input",
            &input,
            "--output",
            &csv.display().to_string(),
            "--batch-size",
            "4",
            "--precision",
            precision,
        ]);
        (out, csv)
    };
    let (fp32, fp32_csv) = run("fp32");
    assert!(
        fp32.status.success(),
        "{}",
        String::from_utf8_lossy(&fp32.stderr)
    );
    let (bf16, bf16_csv) = run("bf16");
    let stderr = String::from_utf8_lossy(&bf16.stderr);
    if refused_for_want_of_bf16(&bf16) {
        assert!(!bf16_csv.exists());
        return;
    }
    assert!(bf16.status.success(), "{stderr}");
    assert!(
        stderr.contains("--precision bf16: "),
        "the verdict: {stderr}"
    );
    let rows = |path: &std::path::Path| -> Vec<(String, String, f32)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (
                    fields[0].into(),
                    fields[1].into(),
                    fields[2].parse().unwrap(),
                )
            })
            .collect()
    };
    let (want, got) = (rows(&fp32_csv), rows(&bf16_csv));
    assert_eq!(want.len(), ROWS.len());
    for ((id, label, score), (bid, blabel, bscore)) in want.iter().zip(&got) {
        assert_eq!((id, label), (bid, blabel));
        let diff = (score - bscore).abs();
        assert!(diff < 1e-2, "{id}: fp32 {score}, bf16 {bscore}");
    }
    let differs = want.iter().zip(&got).any(|(a, b)| a.2 != b.2);
    assert!(
        differs,
        "bf16 products change the scores in their last bits"
    );
}

/// The dataset passes that only read the model (`heads`, `coref`,
/// `project`) take `--precision bf16`: near their fp32 results (the same
/// rows, statistics within bf16's rounding), not equal to them, with the
/// verdict line; refused, naming the flag, where the CPU has no bf16
/// products.
#[test]
fn dataset_passes_in_bf16_stay_near_fp32() {
    let classifier = fixture_model("classifier").display().to_string();
    let mlm = fixture_model("mlm-safetensors").display().to_string();
    let rows = fixtures().join("explain_rows.tsv").display().to_string();
    let marked = fixtures().join("coref_tiny.tsv").display().to_string();
    // (name, arguments, keys compared, whether bf16 moves them: coref's
    // accuracies count whole rows, which bf16's rounding may leave as they are)
    let passes: [(&str, Vec<&str>, &[&str], bool); 3] = [
        (
            "heads",
            vec!["heads", "--model", &classifier, "--data", &rows],
            &["cls", "sep", "punct", "self", "prev", "next", "entropy"],
            true,
        ),
        (
            "coref",
            vec!["coref", "--model", &mlm, "--data", &marked],
            &["accuracy"],
            false,
        ),
        (
            "project",
            vec![
                "project",
                "--model",
                &classifier,
                "--data",
                &rows,
                "--layer",
                "2",
                "--pool",
                "cls",
            ],
            &["explained_variance_ratio"],
            true,
        ),
    ];
    for (name, args, keys, moves) in passes {
        let with = |precision: &str| {
            let mut all = args.clone();
            all.extend(["--json", "--precision", precision]);
            bertscope(&all)
        };
        let fp32 = with("fp32");
        assert!(
            fp32.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&fp32.stderr)
        );
        let bf16 = with("bf16");
        let stderr = String::from_utf8_lossy(&bf16.stderr);
        if refused_for_want_of_bf16(&bf16) {
            continue;
        }
        assert!(bf16.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("--precision bf16: "),
            "{name}: the verdict: {stderr}"
        );
        let json = |out: &std::process::Output| -> serde_json::Value {
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let (want, got) = (json(&fp32), json(&bf16));
        assert_eq!(want["rows"], got["rows"], "{name}: the same rows");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for key in keys {
            flatten_numbers(&want[key], &mut a);
            flatten_numbers(&got[key], &mut b);
        }
        assert!(!a.is_empty(), "{name}: {keys:?} present");
        let diff = max_abs_diff(&a, &b);
        eprintln!("{name}: max |bf16 − fp32| over {keys:?}: {diff}");
        assert!(
            diff > 0.0 || !moves,
            "{name}: bf16 products change the results"
        );
        assert!(diff < 0.05, "{name}: max |diff| {diff}");
    }
}

/// `index --precision bf16`: the index records it, its vectors stay near an
/// fp32 index's without equalling them, a build over it in another
/// precision is refused and changes nothing, and `search` computes its
/// query with the index's precision: each stored token finds itself at a
/// cosine an fp32 query would not reach. Refused, writing nothing, where
/// the CPU has no bf16 products.
#[test]
fn an_index_keeps_its_precision_for_resumes_and_searches() {
    let scratch = tempfile::tempdir().unwrap();
    let model = fixture_model("classifier").display().to_string();
    let rows = fixtures().join("explain_rows.tsv");
    let rows_arg = rows.display().to_string();
    let build = |name: &str, precision: &str| {
        let out = scratch.path().join(name);
        let run = bertscope(&[
            "index",
            "--model",
            &model,
            "--data",
            &rows_arg,
            "--output",
            &out.display().to_string(),
            "--layers",
            "2",
            "--precision",
            precision,
            "--json",
        ]);
        (out, run)
    };
    let (fp32_dir, fp32) = build("fp32", "fp32");
    assert!(
        fp32.status.success(),
        "{}",
        String::from_utf8_lossy(&fp32.stderr)
    );
    let (bf16_dir, bf16) = build("bf16", "bf16");
    if refused_for_want_of_bf16(&bf16) {
        assert!(!bf16_dir.exists(), "a refused build writes nothing");
        return;
    }
    let stderr = String::from_utf8_lossy(&bf16.stderr);
    assert!(bf16.status.success(), "{stderr}");
    assert!(
        stderr.contains("--precision bf16: "),
        "the verdict: {stderr}"
    );
    let manifest = |dir: &std::path::Path| read_json(&dir.join("index.json"));
    assert_eq!(manifest(&fp32_dir)["precision"], "fp32");
    assert_eq!(manifest(&bf16_dir)["precision"], "bf16");

    let vectors = |dir: &std::path::Path| -> Vec<f32> {
        std::fs::read(dir.join("layer-2.f16"))
            .unwrap()
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    };
    let (a, b) = (vectors(&fp32_dir), vectors(&bf16_dir));
    assert_eq!(a.len(), b.len(), "the same tokens");
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = max_abs_diff(&a, &b);
    assert!(diff > 0.0, "bf16 products change the vectors");
    assert!(diff < 0.05 * scale, "max |diff| {diff} of {scale}");

    // Resuming in the other precision: refused, naming the flag, and the
    // index is left byte for byte as it was.
    let before: Vec<Vec<u8>> = ["index.json", "layer-2.f16", "tokens.bin", "rows.jsonl"]
        .iter()
        .map(|f| std::fs::read(bf16_dir.join(f)).unwrap())
        .collect();
    let (_, again) = build("bf16", "fp32");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{stderr}");
    assert!(
        stderr.contains("--precision bf16 there, fp32 now"),
        "{stderr}"
    );
    for (f, old) in ["index.json", "layer-2.f16", "tokens.bin", "rows.jsonl"]
        .iter()
        .zip(&before)
    {
        assert_eq!(&std::fs::read(bf16_dir.join(f)).unwrap(), old, "{f} kept");
    }

    // Each index's first stored token of row 0 finds itself: with the
    // query in the index's precision the cosine is 1 up to the f16
    // storage (~2e-7 here); an fp32 query against bf16 vectors loses ~1e-5.
    let text = std::fs::read_to_string(&rows).unwrap();
    let first = text.lines().nth(1).unwrap();
    let (text_a, text_b) = first.split_once('\t').unwrap();
    let text_b = text_b.split('\t').next().unwrap();
    for (dir, want) in [(&fp32_dir, "fp32"), (&bf16_dir, "bf16")] {
        let run = bertscope(&[
            "search",
            "--index",
            &dir.display().to_string(),
            "--text-a",
            text_a,
            "--text-b",
            text_b,
            "--token",
            "1",
            "--layer",
            "2",
            "--json",
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(got["query"]["precision"], want);
        let top = &got["hits"][0];
        assert_eq!(
            (top["row"].as_u64(), top["token_index"].as_u64()),
            (Some(0), Some(1))
        );
        let score = top["score"].as_f64().unwrap();
        assert!(
            score > 1.0 - 3e-6,
            "{want}: the token finds itself at {score}"
        );
    }
}
