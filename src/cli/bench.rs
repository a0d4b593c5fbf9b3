//! `bertscope bench`: forward-pass latency, fine-tuning throughput, and the
//! time to prepare a data file for training.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use bertscope::model::precision::Precision;
use bertscope::train::bench::train_examples_per_s;

use super::{at_least, human, print_json, select_device, ModelArgs};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Sequence lengths, comma separated (with --train: the first one).
    #[arg(long, value_delimiter = ',', default_value = "16,64,256", value_parser = at_least::<2>)]
    seq: Vec<usize>,
    /// Measure training steps (forward, backward, AdamW) instead.
    #[arg(long, conflicts_with = "data")]
    train: bool,
    /// Measure batched inference instead: rows a second through every layer,
    /// no gradients and no attention maps kept (as the dataset passes and
    /// `predict` run it), --batch-size rows of the first --seq tokens.
    #[arg(long, conflicts_with_all = ["data", "train"])]
    inference: bool,
    /// With --train: where a step's time goes (forward, backward by op kind,
    /// optimiser, kernel time from allocation).
    #[arg(long, requires = "train")]
    profile: bool,
    /// With --train or --inference: the matrix products' precision (as
    /// `finetune --precision`).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// Batch size for --train.
    #[arg(long, default_value_t = 32, value_parser = at_least::<1>)]
    batch_size: usize,
    /// Timed runs per length (after 3 warm-up runs); the median is reported.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Time preparing this TSV/CSV for training instead (read, tokenise,
    /// encode, length statistics), as `finetune` does it.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Truncation length for --data.
    #[arg(long, default_value_t = 128, value_parser = at_least::<2>)]
    max_length: usize,
    /// The columns of --data (as `finetune` takes them).
    #[command(flatten)]
    columns: super::data_args::DataArgs,
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.precision != Precision::Fp32 && !args.train && !args.inference {
        anyhow::bail!("--precision applies to --train and --inference");
    }
    if let Some(file) = &args.data {
        bench_data(&args, file)
    } else if args.profile {
        bench_profile(&args)
    } else if args.train {
        bench_train(&args)
    } else if args.inference {
        bench_inference(&args)
    } else {
        bench_forward(&args)
    }
}

/// `bench --inference`: batched forwards a second, in rows.
fn bench_inference(args: &BenchArgs) -> Result<()> {
    let device = select_device(args.model.device)?;
    let model = bertscope::LoadedModel::load(&args.model.model, &device)?;
    let seq = args.seq.first().copied().unwrap_or(128);
    let rows_per_s = bertscope::dataset::bench::inference_rows_per_s(
        &model,
        args.batch_size,
        seq,
        args.runs,
        args.precision,
    )?;
    if args.json {
        return print_json(&serde_json::json!({ "rows_per_s": rows_per_s }));
    }
    println!(
        "inference: {rows_per_s:.1} rows/s ({} × {seq} tokens, {}, median of {} runs)",
        args.batch_size,
        precision_label(args.precision),
        args.runs
    );
    Ok(())
}

/// The precision's name, with the instructions bf16 products run on.
fn precision_label(precision: Precision) -> String {
    match (precision, bertscope::model::grad_kernels::bf16_kernel()) {
        (Precision::Bf16, Some(kernel)) => format!("bf16 on {}", kernel.name()),
        _ => precision.name().to_string(),
    }
}

/// `bench --data`: seconds to read and tokenise a data file.
fn bench_data(args: &BenchArgs, file: &std::path::Path) -> Result<()> {
    let dir = bertscope::hub::resolve(&args.model.model)?;
    let options = args.columns.options(true)?;
    let t = bertscope::train::bench::prepare_data(&dir, file, &options, args.max_length)?;
    if args.json {
        return print_json(&t);
    }
    println!(
        "data: {} rows read in {:.2} s, tokenised in {:.2} s ({:.0} rows/s), {:.2} s in all",
        t.rows,
        t.read_s,
        t.tokenize_s,
        t.rows as f64 / t.tokenize_s.max(1e-9),
        t.read_s + t.tokenize_s
    );
    Ok(())
}

/// `bench --train`: fine-tuning throughput at the first `--seq`.
fn bench_train(args: &BenchArgs) -> Result<()> {
    let dir = bertscope::hub::resolve(&args.model.model)?;
    let device = select_device(args.model.device)?;
    let (batch, runs) = (args.batch_size, args.runs);
    let seq = args.seq.first().copied().unwrap_or(64);
    let precision = args.precision;
    let rate = train_examples_per_s(&dir, batch, seq, runs, &device, precision)
        .map_err(|e| anyhow::anyhow!("--precision {}: {e}", precision.name()))?;
    if args.json {
        let name = precision.name();
        print_json(&serde_json::json!({ "train_examples_per_s": rate, "precision": name }))
    } else {
        let name = precision_label(precision);
        println!("training: {rate:.1} examples/s (batch {batch}, seq {seq}, {name})");
        Ok(())
    }
}

/// `bench --train --profile`: a training step's time by phase and op kind.
fn bench_profile(args: &BenchArgs) -> Result<()> {
    let dir = bertscope::hub::resolve(&args.model.model)?;
    let device = select_device(args.model.device)?;
    let seq = args.seq.first().copied().unwrap_or(64);
    let (batch, precision) = (args.batch_size, args.precision);
    let p =
        bertscope::train::profile::profile_step(&dir, batch, seq, args.runs, &device, precision)
            .map_err(|e| anyhow::anyhow!("--precision {}: {e}", precision.name()))?;
    if args.json {
        return print_json(&p);
    }
    let share = |ms: f64| 100.0 * ms / p.step_ms.max(1e-9);
    println!(
        "training step ({}), batch {} × seq {seq} in {} micro-batches: {:.1} ms ({:.1} examples/s), mean of {} steps",
        p.precision.name(),
        args.batch_size,
        p.micro_batches,
        p.step_ms,
        args.batch_size as f64 * 1e3 / p.step_ms.max(1e-9),
        p.steps
    );
    for (name, ms) in [
        ("forward", p.forward_ms),
        ("backward", p.backward_ms),
        ("optimiser (clip + AdamW)", p.optimizer_ms),
    ] {
        println!("  {name:<34} {ms:>9.1} ms  {:>5.1}%", share(ms));
    }
    println!(
        "  {:<34} {:>9.1} ms  {:>5.1}%  ({:.0} page faults: fresh memory)",
        "kernel time (allocation)",
        p.system_ms,
        share(p.system_ms),
        p.page_faults
    );
    println!("backward by op kind (each op run alone at the step's shapes):");
    let known: f64 = p.backward_by_op.iter().map(|(_, ms)| ms).sum();
    for (name, ms) in &p.backward_by_op {
        println!("  {name:<34} {ms:>9.1} ms  {:>5.1}%", share(*ms));
    }
    let rest = (p.backward_ms - known).max(0.0);
    println!(
        "  {:<34} {rest:>9.1} ms  {:>5.1}%",
        "the rest (head, loss, copies, sums)",
        share(rest)
    );
    Ok(())
}

/// `bench`: median forward time at each `--seq`.
fn bench_forward(args: &BenchArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let loaded = args.model.load()?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let max = loaded.config().raw.max_position_embeddings;
    if let Some(len) = args.seq.iter().find(|&&len| len > max) {
        anyhow::bail!(
            "--seq {len}: longer than the model allows (max_position_embeddings = {max})"
        );
    }
    let times = loaded.bench_forward(&args.seq, args.runs)?;
    if !args.json {
        human::bench(load_ms, &times);
        return Ok(());
    }
    let forward: serde_json::Map<String, serde_json::Value> = times
        .iter()
        .map(|(len, ms)| (len.to_string(), serde_json::json!(ms)))
        .collect();
    print_json(&serde_json::json!({
        "forward_ms": forward,
        "load_ms": load_ms,
        "device": format!("{:?}", loaded.model.device().location()),
    }))
}
