//! `bertscope finetune`: flags → data and config → the training loop with a
//! progress bar on stderr; `--resume` continues a run from its `OUTPUT.partial`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use bertscope::device::DeviceChoice;
use bertscope::error::BertError;
use bertscope::model::precision::Precision;
use bertscope::train::{self, kit, run_dir, Event, Task, TrainConfig};
use bertscope::write_guard::{self, Protected};

use super::data_args::DataArgs;

#[derive(Args)]
pub struct FinetuneArgs {
    /// Base model: directory, name under ./models, or Hub id in the local cache.
    #[arg(long, required_unless_present = "resume")]
    model: Option<String>,
    /// classification: a classifier head on labelled pairs; mlm: further masked-LM
    /// pre-training on text (a .txt file, one text per line, or a TSV's text columns).
    #[arg(long, value_enum, default_value_t = Task::Classification)]
    task: Task,
    /// Training data (TSV or CSV with a header).
    #[arg(long, required_unless_present = "resume")]
    train: Option<PathBuf>,
    /// Dev data for per-epoch evaluation and best-epoch selection.
    #[arg(long, conflicts_with = "dev_fraction")]
    dev: Option<PathBuf>,
    /// Hold out this fraction of the training rows as dev data instead.
    #[arg(long)]
    dev_fraction: Option<f64>,
    /// Output directory (a Hugging Face checkpoint). While training, the run's
    /// state is kept next to it in OUTPUT.partial/ (see --resume).
    #[arg(long, required_unless_present = "resume")]
    output: Option<PathBuf>,
    /// Replace an existing output, but only a checkpoint bertscope wrote (and
    /// discard an interrupted run's OUTPUT.partial/). Folders of other files,
    /// the current directory and anything holding the model or the data are
    /// always refused.
    #[arg(long)]
    overwrite: bool,
    /// Continue an interrupted run from its last finished epoch (optimiser,
    /// schedule and random state included): give OUTPUT.partial (or OUTPUT).
    /// Every other setting comes from the run; --device may be given.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "train", "dev", "dev_fraction", "output"])]
    resume: Option<PathBuf>,
    #[arg(long, default_value_t = 3, value_parser = super::at_least::<1>)]
    epochs: usize,
    #[arg(long, default_value_t = 32, value_parser = super::at_least::<1>)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Keep the file's order instead of shuffling each epoch (no bucketing either).
    #[arg(long)]
    no_shuffle: bool,
    /// Batches drawn exactly in the shuffled order. By default rows of similar
    /// length are batched together (sorted inside windows of 50 batches, the
    /// batches shuffled), which cuts padding and time.
    #[arg(long)]
    no_bucketing: bool,
    /// Dropout probability for every dropout layer (default: the config's).
    #[arg(long)]
    dropout: Option<f64>,
    /// Matrix products in fp32 (equal to PyTorch step for step) or bf16 with
    /// fp32 sums (CPUs with AVX-512-BF16 or AMX-BF16; weights, gradients and AdamW stay fp32).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
    /// Save the last epoch instead of the best dev epoch.
    #[arg(long)]
    save_last: bool,
    /// Also keep a checkpoint per epoch (and epoch 0, the base with its new head)
    /// under OUTPUT/epochs/, for the app's before/after checkpoint slider.
    #[arg(long)]
    keep_epochs: bool,
    /// Label set in class order, comma separated (default: sorted training labels).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Train nothing: write a launch kit for this run to DIR instead, a
    /// Hugging Face Trainer script (train.py) for GPUs and clusters (torchrun,
    /// accelerate) with requirements.txt, accelerate.yaml and a README.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    export_trainer: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

/// A run, validated: what `run.json` records so that `--resume` needs nothing else.
#[derive(Serialize, Deserialize)]
struct Plan {
    base_model: PathBuf,
    train: PathBuf,
    dev: Option<PathBuf>,
    dev_fraction: Option<f64>,
    output: PathBuf,
    overwrite: bool,
    keep_epochs: bool,
    config: TrainConfig,
    data: DataArgs,
}

impl FinetuneArgs {
    /// --model, --train and --output, which every new run needs.
    fn required(&self) -> Result<(&str, &Path, &Path)> {
        match (&self.model, &self.train, &self.output) {
            (Some(model), Some(train), Some(output)) => {
                Ok((model.as_str(), train.as_path(), output.as_path()))
            }
            _ => bail!("--model, --train and --output are required (or --resume DIR)"),
        }
    }

    /// The hyperparameters, checked.
    fn config(&self) -> Result<TrainConfig> {
        let args = self;
        if let Some(f) = args.dev_fraction.filter(|f| !(0.0..1.0).contains(f)) {
            bail!("--dev-fraction {f}: expected a number in [0, 1)");
        }
        if args.batch_size == 0 || args.epochs == 0 {
            bail!("--batch-size and --epochs must be at least 1");
        }
        Ok(TrainConfig {
            task: args.task,
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            weight_decay: args.weight_decay,
            warmup_ratio: args.warmup_ratio,
            max_grad_norm: args.max_grad_norm,
            max_length: args.max_length,
            seed: args.seed,
            max_steps: args.max_steps,
            shuffle: !args.no_shuffle,
            bucketing: !args.no_bucketing,
            dropout: args.dropout,
            precision: args.precision,
            save_last: args.save_last,
            labels: args.labels.clone(),
            ..TrainConfig::default()
        })
    }
}

impl Plan {
    fn from_args(args: &FinetuneArgs) -> Result<Plan> {
        let (model, train, output) = args.required()?;
        let config = args.config()?;
        Ok(Plan {
            base_model: resolve(&bertscope::hub::resolve(model)?),
            train: resolve(train),
            dev: args.dev.as_deref().map(resolve),
            dev_fraction: args.dev_fraction,
            output: resolve(output),
            overwrite: args.overwrite,
            keep_epochs: args.keep_epochs,
            config,
            data: args.data.clone(),
        })
    }

    /// The plan of the interrupted run in `dir` (its `.partial` directory, or its output).
    fn resume(dir: &Path) -> Result<(Plan, PathBuf)> {
        let run = if dir.join(run_dir::RUN_FILE).is_file() {
            dir.to_path_buf()
        } else {
            run_dir::partial_path(dir)
        };
        if !run.is_dir() {
            bail!(
                "{}: no interrupted run here (expected a run directory such as OUTPUT.partial)",
                dir.display()
            );
        }
        let info = run_dir::read_info(&run)?;
        let file = run.join(run_dir::RUN_FILE);
        let plan: Plan = serde_json::from_value(info).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a run this bertscope can resume: {e}",
                file.display()
            )
        })?;
        if run != run_dir::partial_path(&plan.output)
            && resolve(&run) != run_dir::partial_path(&plan.output)
        {
            bail!(
                "{}: this run writes to {}; its state must stay in {}",
                run.display(),
                plan.output.display(),
                run_dir::partial_path(&plan.output).display()
            );
        }
        Ok((plan, run))
    }

    /// What neither the output nor the run directory may be, hold or sit in.
    fn protected(&self) -> Protected {
        let mut p = Protected::new();
        p.add("the base model", &self.base_model);
        p.add("the training data", &self.train);
        if let Some(dev) = &self.dev {
            p.add("the dev data", dev);
        }
        p
    }
}

/// `path` made absolute, so that a resumed run finds its files from any directory.
fn resolve(path: &Path) -> PathBuf {
    write_guard::absolute(path)
}

pub fn finetune(args: FinetuneArgs) -> Result<()> {
    if let Some(dir) = &args.export_trainer {
        return export_trainer(&args, dir);
    }
    let (plan, run, resuming) = match &args.resume {
        Some(dir) => {
            let (plan, run) = Plan::resume(dir)?;
            (plan, run, true)
        }
        None => {
            let plan = Plan::from_args(&args)?;
            let run = run_dir::partial_path(&plan.output);
            (plan, run, false)
        }
    };
    let protected = plan.protected();
    write_guard::remove_stale_staging(&plan.output);
    write_guard::remove_stale_staging(&run);
    check_output(&plan.output, &protected, plan.overwrite)?;
    let device = super::select_device(args.device)?;
    let precision = plan.config.precision;
    super::check_precision(precision, &device)?;
    if !resuming {
        start_run(&plan, &run, &protected, args.overwrite)?;
    }
    eprintln!(
        "training on {}, {} products",
        bertscope::device::describe(&device, args.device),
        precision.name()
    );
    let result = train_and_save(&plan, &run, resuming, &protected, &device, args.json);
    if let Err(e) = &result {
        if run_dir::latest_state(&run).is_some() {
            eprintln!(
                "the run's last finished epoch is kept in {}: `bertscope finetune --resume {}` continues it (and saves it) once the problem is fixed",
                run.display(),
                run.display()
            );
        } else if !resuming {
            let _ = run_dir::remove(&run);
        }
        return Err(anyhow::anyhow!("{e:#}"));
    }
    result
}

/// Refuse an output that is not ours to replace; the CLI names its flag.
fn check_output(output: &Path, protected: &Protected, overwrite: bool) -> Result<()> {
    match write_guard::check_output_dir(output, protected, overwrite) {
        Err(e @ BertError::OutputExists { .. }) => Err(anyhow::anyhow!(
            "{e}; pass --overwrite to replace it (only a checkpoint bertscope wrote is ever replaced)"
        )),
        other => Ok(other?),
    }
}

/// Make the run directory `OUTPUT.partial`, first discarding an interrupted
/// run there with `--overwrite`.
fn start_run(plan: &Plan, run: &Path, protected: &Protected, overwrite: bool) -> Result<()> {
    write_guard::check_output_dir(run, protected, true).or_else(|e| {
        if run.exists() {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if run.exists() {
        if let Err(why) = run_dir::ours(run) {
            bail!(
                "{}: is in the way of this run's state and is not a bertscope run ({why}); move it away",
                run.display()
            );
        }
        if !overwrite {
            bail!(
                "{}: an interrupted run to this output is here: continue it with `bertscope finetune --resume {}`, or pass --overwrite to start afresh",
                run.display(),
                run.display()
            );
        }
        run_dir::remove(run)?;
    }
    check_free_space(plan)?;
    run_dir::create(run, &serde_json::to_value(plan)?)?;
    Ok(())
}

/// Refuse to start a run the disk cannot hold (see the README's guarantees).
fn check_free_space(plan: &Plan) -> Result<()> {
    let kept = if plan.keep_epochs {
        run_dir::kept_epochs(&plan.config)
    } else {
        0
    };
    let need = run_dir::space_needed(run_dir::weights_size(&plan.base_model), kept);
    let parent = plan.output.parent().unwrap_or(Path::new("/"));
    if let Some(free) = write_guard::free_space(parent) {
        if free < need {
            bail!(
                "{}: a run of this model needs about {} of free space (checkpoints, optimiser state{}), {} is free",
                parent.display(),
                human_bytes(need),
                if plan.keep_epochs { ", one checkpoint per epoch" } else { "" },
                human_bytes(free)
            );
        }
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    format!("{:.1} GB", n as f64 / 1e9)
}

fn train_and_save(
    plan: &Plan,
    run: &Path,
    resuming: bool,
    protected: &Protected,
    device: &candle_core::Device,
    json: bool,
) -> Result<()> {
    let labelled = plan.config.task == Task::Classification;
    let mut train_data = plan.data.read(&plan.train, labelled)?;
    let dev_data = match (&plan.dev, plan.dev_fraction) {
        (Some(path), _) => Some(plan.data.read(path, labelled)?),
        (None, Some(fraction)) => Some(train::split_dev(
            &mut train_data,
            fraction,
            plan.config.seed,
        )),
        (None, None) => None,
    };
    let cfg = TrainConfig {
        epochs_dir: plan.keep_epochs.then(|| run.join(write_guard::EPOCHS_DIR)),
        run_dir: Some(run.to_path_buf()),
        resume: resuming,
        ..plan.config.clone()
    };
    if resuming {
        eprintln!("resuming the run in {}", run.display());
    }
    let progress = progress_bar();
    let mut on_event = |event: Event| show_event(&progress, &cfg, run, event);
    let cancel = AtomicBool::new(false);
    let trained = train::train(
        &plan.base_model,
        &train_data,
        dev_data.as_ref(),
        &cfg,
        device,
        &mut on_event,
        &cancel,
    )?;
    progress.finish_and_clear();
    let saved = train::save::save_to(
        &trained,
        &cfg,
        &plan.output,
        protected,
        plan.overwrite || resuming,
    )
    .with_context(|| format!("saving {}", plan.output.display()))?;
    run_dir::remove(run)?;
    report(&trained.report, &saved, json)
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(bar_style(STEPS_BAR));
    bar
}

const STEPS_BAR: &str = "{bar:30} {pos}/{len} steps  epoch {prefix}  {msg}  eta {eta}";
const TOKENIZING_BAR: &str = "{bar:30} {pos}/{len} rows tokenised  eta {eta}";

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn show_event(bar: &ProgressBar, cfg: &TrainConfig, run: &Path, event: Event) {
    match event {
        Event::Tokenizing { done, total } if done < total => {
            if bar.length() != Some(total as u64) {
                bar.set_style(bar_style(TOKENIZING_BAR));
                bar.set_length(total as u64);
            }
            bar.set_position(done as u64);
        }
        Event::Tokenizing { .. } => {
            bar.set_style(bar_style(STEPS_BAR));
            bar.set_position(0);
        }
        Event::Summary(s) => bar.suspend(|| {
            if s.label_counts.is_empty() {
                eprintln!(
                    "data: {} training texts, {} dev texts (masked-LM: no labels)",
                    s.train_rows, s.dev_rows
                );
            } else {
                eprintln!(
                    "data: {} training rows, {} dev rows; labels {:?}; majority baseline {:.1}%",
                    s.train_rows,
                    s.dev_rows,
                    s.label_counts,
                    s.majority_baseline * 100.0
                );
            }
            let [p50, p90, p95, p99, max] = s.length_percentiles;
            eprintln!(
                "tokens per input: p50 {p50}, p90 {p90}, p95 {p95}, p99 {p99}, max {max}; {} inputs longer than --max-length {} are truncated",
                s.truncated, cfg.max_length
            );
        }),
        Event::Step {
            step,
            total_steps,
            epoch,
            loss,
            lr,
            examples_per_s,
            ..
        } => {
            bar.set_length(total_steps as u64);
            bar.set_position(step as u64);
            bar.set_prefix(epoch.to_string());
            bar.set_message(format!("loss {loss:.4}  lr {lr:.2e}  {examples_per_s:.1} ex/s"));
        }
        Event::Epoch {
            epoch,
            train_loss,
            dev,
        } => bar.suspend(|| {
            eprintln!("{}", train::EpochSummary { epoch, train_loss, dev }.describe());
            eprintln!("  (if interrupted: `bertscope finetune --resume {}`)", run.display());
        }),
        Event::Warning(message) => bar.suspend(|| eprintln!("warning: {message}")),
    }
}

fn report(report: &train::Report, saved: &Path, json: bool) -> Result<()> {
    let kept = match (report.best_epoch, report.epochs.last()) {
        (Some(best), Some(last)) if best == last.epoch => format!("epoch {best}, the last"),
        (Some(best), _) => format!("epoch {best}, the best on dev data"),
        (None, _) => "no finished epoch".to_string(),
    };
    eprintln!(
        "saved {} ({}, {} steps, {kept}, {:.1} examples/s)",
        saved.display(),
        report.outcome.describe(),
        report.steps,
        report.train_examples_per_s
    );
    if let train::Outcome::Diverged { step } = report.outcome {
        eprintln!("warning: the loss became NaN/inf at step {step}; saved the last good weights (try a lower --lr)");
    }
    if json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}

/// `--export-trainer DIR`: the run these flags describe, as a Trainer kit.
fn export_trainer(args: &FinetuneArgs, dir: &Path) -> Result<()> {
    let (model, train, output) = args.required()?;
    let config = args.config()?;
    let options = args.data.options(config.task == Task::Classification)?;
    // The data may live elsewhere (on the cluster); here it is checked when present.
    for path in std::iter::once(train).chain(args.dev.as_deref()) {
        if path.is_file() && path.extension().is_none_or(|e| e != "txt") {
            bertscope::data::Rows::open(path, &options)
                .map_err(super::data_args::with_column_flag)?;
        }
    }
    let resolved = bertscope::hub::resolve(model).ok();
    let run = kit::KitRun {
        model: kit::model_name(model, resolved.as_deref()),
        train: train.to_path_buf(),
        dev: args.dev.clone(),
        dev_fraction: args.dev_fraction,
        output: output.to_path_buf(),
        config,
        columns: options.columns,
        delimiter: args.data.delimiter_text(),
        skip_bad_rows: options.skip_bad_rows,
    };
    let mut protected = Protected::new();
    protected
        .add("the training data", train)
        .add("the output", output);
    if let Some(dir) = &resolved {
        protected.add("the base model", dir);
    }
    if let Some(dev) = &args.dev {
        protected.add("the dev data", dev);
    }
    let command = shell_words(std::env::args());
    kit::write(dir, &run, &command, &protected, args.overwrite).map_err(|e| match e {
        e @ BertError::OutputExists { .. } => {
            anyhow::anyhow!("{e}; pass --overwrite to replace a kit bertscope wrote")
        }
        other => other.into(),
    })?;
    if args.precision == Precision::Bf16 {
        eprintln!(
            "note: --precision bf16 is bertscope's CPU option; on GPUs launch train.py with --bf16"
        );
    }
    let d = dir.display();
    eprintln!("wrote a Trainer kit for this run to {d}/ (train.py, requirements.txt, accelerate.yaml, README.md):");
    eprintln!("  pip install -r {d}/requirements.txt");
    eprintln!("  python {d}/train.py                        # one GPU, or a CPU");
    eprintln!("  torchrun --nproc_per_node N {d}/train.py   # N GPUs (or processes)");
    eprintln!("  accelerate launch --config_file {d}/accelerate.yaml {d}/train.py");
    eprintln!(
        "then follow it with: bertscope watch {}",
        run.output.display()
    );
    Ok(())
}

/// The command line, quoted for a POSIX shell where a word needs it.
fn shell_words(words: impl Iterator<Item = String>) -> String {
    let quote = |w: String| {
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| c.is_alphanumeric() || "-_./=:,@%+".contains(c));
        if plain {
            w
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    words.map(quote).collect::<Vec<_>>().join(" ")
}
