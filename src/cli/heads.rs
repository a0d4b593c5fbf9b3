//! `bertscope heads` (what each head attends to over a data file) and
//! `bertscope coref` (which heads resolve marked pronouns), both one dataset
//! pass with a progress bar on stderr.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;

use bertscope::data;
use bertscope::dataset::{self, MarkedRow, PassLimits, DEFAULT_MAX_LENGTH};
use bertscope::device::DeviceChoice;
use bertscope::model::precision::{self, Precision};

use super::data_args::DataArgs;

#[derive(Args)]
pub struct HeadsArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Rows to run (TSV/CSV with a header, or .txt one row a line).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    columns: DataArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    precision: super::PrecisionArg,
}

/// The model a pass runs, where, and how it prints.
#[derive(Args)]
pub(super) struct RunArgs {
    /// Model directory, name under ./models, or Hub id in the local cache.
    #[arg(long)]
    pub(super) model: String,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub(super) device: DeviceChoice,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub(super) json: bool,
}

impl RunArgs {
    pub(super) fn load(&self) -> Result<bertscope::LoadedModel> {
        let device = super::select_device(self.device)?;
        Ok(bertscope::LoadedModel::load(&self.model, &device)?)
    }

    /// The model, after `precision` was checked on its device (a refusal
    /// comes before the model is read).
    pub(super) fn load_checked(
        &self,
        precision: &super::PrecisionArg,
    ) -> Result<(bertscope::LoadedModel, Precision)> {
        let device = super::select_device(self.device)?;
        let precision = precision.checked(&device)?;
        Ok((
            bertscope::LoadedModel::load(&self.model, &device)?,
            precision,
        ))
    }
}

#[derive(Args)]
pub struct CorefArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Marked rows: a TSV/CSV with a text column, or a .txt (one row a line).
    /// Each marks one {pronoun}, one [antecedent] and any <other mention>.
    #[arg(long)]
    data: PathBuf,
    /// The column holding the marked text.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// Field separator (default: tab for .tsv, comma otherwise); `\t` for tab.
    #[arg(long)]
    delimiter: Option<String>,
    /// Drop bad rows (and report which) instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    precision: super::PrecisionArg,
}

#[derive(Args)]
pub(super) struct LimitArgs {
    /// Use only the first N rows.
    #[arg(long, value_parser = super::at_least::<1>)]
    max_rows: Option<usize>,
    /// Cut each row to this many tokens (longest-first for pairs).
    #[arg(long, default_value_t = DEFAULT_MAX_LENGTH, value_parser = super::at_least::<2>)]
    max_length: usize,
}

impl LimitArgs {
    pub(super) fn limits(&self) -> PassLimits {
        PassLimits {
            max_rows: self.max_rows,
            max_length: self.max_length,
        }
    }
}

/// Run a dataset pass with a rows bar on stderr (cleared afterwards) and
/// no cancel: Ctrl-C ends the process, and an index build resumes.
pub(super) fn with_rows_bar<R>(
    pass: impl FnOnce(&mut dyn FnMut(usize, usize), &AtomicBool) -> R,
) -> R {
    let bar = bar();
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let never = AtomicBool::new(false);
    let out = pass(&mut progress, &never);
    bar.finish_and_clear();
    out
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} rows  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

pub fn heads(args: HeadsArgs) -> Result<()> {
    let (model, precision) = args.run.load_checked(&args.precision)?;
    let data = args.columns.read(&args.data, false)?;
    let stats = precision::scoped(precision, || {
        with_rows_bar(|progress, never| {
            dataset::head_stats(&model, &data, args.limits.limits(), 0, progress, never)
        })
    })?;
    if args.run.json {
        return super::print_json(&stats);
    }
    println!(
        "{} rows, {} tokens; {} layers × {} heads. The heads that do each most (layer-head, 0-based):",
        stats.rows, stats.tokens, stats.layers, stats.heads
    );
    for name in dataset::stats::NAMES {
        let Some(matrix) = stats.get(name) else {
            continue;
        };
        let mut ranked: Vec<(usize, usize, f64)> = matrix
            .iter()
            .enumerate()
            .flat_map(|(l, row)| row.iter().enumerate().map(move |(h, &v)| (l, h, v)))
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|(l, h, v)| format!("{l}-{h} {v:.3}"))
            .collect();
        let unit = if name == "entropy" { " bits" } else { "" };
        println!("  {name:<8} {}{unit}", top.join(", "));
    }
    Ok(())
}

pub fn coref(args: CorefArgs) -> Result<()> {
    let (model, precision) = args.run.load_checked(&args.precision)?;
    let (rows, mut skipped_lines) = read_marked(&args)?;
    let (result, probe_skipped) = precision::scoped(precision, || {
        with_rows_bar(|progress, never| {
            dataset::coref_probe(
                &model,
                &args.data,
                &rows,
                args.limits.limits(),
                args.skip_bad_rows,
                progress,
                never,
            )
        })
    })?;
    skipped_lines.extend(probe_skipped);
    skipped_lines.sort_by_key(|s| s.line);
    super::data_args::report_skipped(&args.data, &skipped_lines);
    if args.run.json {
        return super::print_json(&result);
    }
    println!(
        "{} rows; the heads that choose the antecedent most often (layer-head, 0-based):",
        result.rows
    );
    for b in &result.best {
        println!("  {}-{}  {:.1}%", b.layer, b.head, b.accuracy * 100.0);
    }
    println!(
        "baselines: nearest candidate {:.1}%, chance {:.1}%",
        result.baselines.nearest * 100.0,
        result.baselines.chance * 100.0
    );
    Ok(())
}

/// The marked rows of a TSV/CSV's text column, or of a .txt file's lines.
fn read_marked(args: &CorefArgs) -> Result<(Vec<MarkedRow>, Vec<data::Skipped>)> {
    let delimiter = super::data_args::parse_delimiter(args.delimiter.as_deref())?;
    dataset::read_marked(&args.data, &args.text_column, delimiter, args.skip_bad_rows).map_err(
        |e| match e {
            e @ bertscope::BertError::MissingColumn { .. } => {
                anyhow::anyhow!("{e} with --text-column")
            }
            other => other.into(),
        },
    )
}
