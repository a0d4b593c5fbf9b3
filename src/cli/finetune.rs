//! `bertscope finetune` and `bertscope predict`: flags → data and config → the
//! training loop with a progress bar on stderr.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use bertscope::data::{self, Columns, Dataset, ReadOptions};
use bertscope::device::{self, DeviceChoice};
use bertscope::train::{self, Event, Task, TrainConfig};

/// Where the text, label and id columns are, and how to read the files.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Column with the first sentence.
    #[arg(long, default_value = "text_a")]
    text_a_column: String,
    /// Column with the second sentence (default: `text_b` when present).
    #[arg(long)]
    text_b_column: Option<String>,
    #[arg(long, default_value = "label")]
    label_column: String,
    #[arg(long, default_value = "id")]
    id_column: String,
    /// Field separator (default: tab for .tsv, comma otherwise); `\t` for tab.
    #[arg(long)]
    delimiter: Option<String>,
    /// Drop bad rows (and report which) instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

impl DataArgs {
    fn options(&self, require_label: bool) -> Result<ReadOptions> {
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("\\t") | Some("tab") => Some(b'\t'),
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(d) => bail!("--delimiter {d:?}: expected one character"),
        };
        Ok(ReadOptions {
            delimiter,
            columns: Columns {
                text_a: self.text_a_column.clone(),
                text_b: self.text_b_column.clone(),
                label: self.label_column.clone(),
                id: self.id_column.clone(),
            },
            require_label,
            skip_bad_rows: self.skip_bad_rows,
        })
    }

    fn read(&self, path: &std::path::Path, require_label: bool) -> Result<Dataset> {
        let plain_text = path.extension().is_some_and(|e| e == "txt") && !require_label;
        let ds = if plain_text {
            data::read_lines(path)?
        } else {
            data::read(path, &self.options(require_label)?)?
        };
        if !ds.skipped.is_empty() {
            let lines: Vec<String> = ds
                .skipped
                .iter()
                .take(20)
                .map(|s| s.line.to_string())
                .collect();
            eprintln!(
                "warning: {}: skipped {} bad rows (lines {}{}); first: {}",
                path.display(),
                ds.skipped.len(),
                lines.join(", "),
                if ds.skipped.len() > 20 { ", …" } else { "" },
                ds.skipped[0].reason
            );
        }
        Ok(ds)
    }
}

#[derive(Args)]
pub struct FinetuneArgs {
    /// Base model: directory, name under ./models, or Hub id in the local cache.
    #[arg(long)]
    model: String,
    /// classification: a classifier head on labelled pairs; mlm: further masked-LM
    /// pre-training on text (a .txt file, one text per line, or a TSV's text columns).
    #[arg(long, value_enum, default_value_t = Task::Classification)]
    task: Task,
    /// Training data (TSV or CSV with a header).
    #[arg(long)]
    train: PathBuf,
    /// Dev data for per-epoch evaluation and best-epoch selection.
    #[arg(long, conflicts_with = "dev_fraction")]
    dev: Option<PathBuf>,
    /// Hold out this fraction of the training rows as dev data instead.
    #[arg(long)]
    dev_fraction: Option<f64>,
    /// Output directory (a Hugging Face checkpoint).
    #[arg(long)]
    output: PathBuf,
    /// Replace a non-empty output directory.
    #[arg(long)]
    overwrite: bool,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
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
    /// Keep the file's order instead of shuffling each epoch.
    #[arg(long)]
    no_shuffle: bool,
    /// Dropout probability for every dropout layer (default: the config's).
    #[arg(long)]
    dropout: Option<f64>,
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
    #[command(flatten)]
    data: DataArgs,
}

pub fn finetune(args: FinetuneArgs) -> Result<()> {
    let base = bertscope::hub::resolve(&args.model)?;
    train::save::check_output(&args.output, &base, args.overwrite)?;
    let device = device::select(args.device)?;
    let labelled = args.task == Task::Classification;
    let mut train_data = args.data.read(&args.train, labelled)?;
    let dev_data = match (&args.dev, args.dev_fraction) {
        (Some(path), _) => Some(args.data.read(path, labelled)?),
        (None, Some(fraction)) => {
            if !(0.0..1.0).contains(&fraction) {
                bail!("--dev-fraction {fraction}: expected a number in [0, 1)");
            }
            Some(train::split_dev(&mut train_data, fraction, args.seed))
        }
        (None, None) => None,
    };
    let cfg = TrainConfig {
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
        dropout: args.dropout,
        save_last: args.save_last,
        labels: args.labels.clone(),
        epochs_dir: args.keep_epochs.then(|| epochs_scratch(&args.output)),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  epoch {prefix}  {msg}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut on_event = |event: Event| {
        match event {
        Event::Summary(s) => bar.suspend(|| {
            if s.label_counts.is_empty() {
                eprintln!("data: {} training texts, {} dev texts (masked-LM: no labels)", s.train_rows, s.dev_rows);
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
                s.truncated, args.max_length
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
        Event::Epoch { epoch, train_loss, dev } => bar.suspend(|| {
            eprintln!("{}", train::EpochSummary { epoch, train_loss, dev }.describe())
        }),
    }
    };
    let cancel = AtomicBool::new(false);
    let trained = train::train(
        &base,
        &train_data,
        dev_data.as_ref(),
        &cfg,
        &device,
        &mut on_event,
        &cancel,
    );
    let trained = match trained {
        Ok(t) => t,
        Err(e) => {
            if let Some(dir) = &cfg.epochs_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e.into());
        }
    };
    bar.finish_and_clear();
    let saved = train::save::save(&trained, &cfg, &args.output, args.overwrite)?;
    let report = &trained.report;
    eprintln!(
        "saved {} ({:?}, {} steps, best epoch {:?}, {:.1} examples/s)",
        saved.display(),
        report.outcome,
        report.steps,
        report.best_epoch,
        report.train_examples_per_s
    );
    if let train::Outcome::Diverged { step } = report.outcome {
        eprintln!("warning: the loss became NaN/inf at step {step}; saved the last good weights (try a lower --lr)");
    }
    if args.json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}

/// Where per-epoch checkpoints wait until the output is written: next to it,
/// so that moving them in is a rename.
fn epochs_scratch(output: &std::path::Path) -> PathBuf {
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    parent.join(format!(".{name}.epochs-{}", std::process::id()))
}

#[derive(Args)]
pub struct PredictArgs {
    /// A fine-tuned classification model.
    #[arg(long)]
    model: String,
    /// Rows to classify (TSV or CSV with a header; labels not needed).
    #[arg(long)]
    input: PathBuf,
    /// Output CSV: id,label,score.
    #[arg(long)]
    output: PathBuf,
    /// Header of the label column in the output (e.g. Category).
    #[arg(long, default_value = "label")]
    label_header: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    #[command(flatten)]
    data: DataArgs,
}

pub fn predict(args: PredictArgs) -> Result<()> {
    let device = device::select(args.device)?;
    let model = bertscope::LoadedModel::load(&args.model, &device)?;
    if model.model.classifier.is_none() {
        bail!(
            "{}: this checkpoint has no classification head (no `classifier.weight`)",
            model.dir.display()
        );
    }
    let data = args.data.read(&args.input, false)?;
    let bar = ProgressBar::new(data.examples.len() as u64);
    let predictions =
        bertscope::predict::predict(&model, &data, args.batch_size, &mut |done, _| {
            bar.set_position(done as u64)
        })?;
    bar.finish_and_clear();
    bertscope::predict::write_csv(&args.output, &predictions, &args.label_header)
        .with_context(|| "writing predictions")?;
    eprintln!(
        "wrote {} predictions to {}",
        predictions.len(),
        args.output.display()
    );
    Ok(())
}
