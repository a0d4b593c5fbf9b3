//! `bertscope project`: a data file's rows pooled at one layer and laid out
//! by PCA; with `--tuned`, the base, every kept epoch and the tuned model,
//! each aligned to the tuned model's axes.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use bertscope::dataset::pooled::Pool;
use bertscope::project::{self, ProjectOptions};

use super::data_args::DataArgs;
use super::heads::{with_rows_bar, LimitArgs, RunArgs};

#[derive(Clone, Copy, ValueEnum)]
enum PoolArg {
    /// The [CLS] token's hidden state.
    Cls,
    /// The mean over the input's tokens, [CLS] and [SEP] included.
    Mean,
}

#[derive(Clone, Copy, ValueEnum)]
enum Method {
    /// Principal components: centred, not scaled, the first two.
    Pca,
}

#[derive(Args)]
pub struct ProjectArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Rows to project (TSV/CSV with a header, or .txt one row a line).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    columns: DataArgs,
    /// A fine-tuned run of --model (`finetune --output`): also lay out each
    /// kept epoch and the tuned model, aligned to the tuned model's axes.
    #[arg(long)]
    tuned: Option<PathBuf>,
    /// Layer as `hidden_states` numbers them (0: the embeddings' output).
    #[arg(long)]
    layer: usize,
    #[arg(long, value_enum)]
    pool: PoolArg,
    #[arg(long, value_enum, default_value_t = Method::Pca)]
    method: Method,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    precision: super::PrecisionArg,
}

pub fn project(args: ProjectArgs) -> Result<()> {
    let Method::Pca = args.method;
    let device = super::select_device(args.run.device)?;
    let precision = args.precision.checked(&device)?;
    let model = args.run.load()?;
    let data = args.columns.read(&args.data, false)?;
    if let Some(tuned) = &args.tuned {
        if !tuned.join("config.json").is_file() {
            anyhow::bail!(
                "{}: --tuned is not a model folder (no config.json)",
                tuned.display()
            );
        }
    }
    let options = ProjectOptions {
        layer: args.layer,
        pool: match args.pool {
            PoolArg::Cls => Pool::Cls,
            PoolArg::Mean => Pool::Mean,
        },
        limits: args.limits.limits(),
    };
    let result = bertscope::model::precision::scoped(precision, || {
        with_rows_bar(|progress, never| {
            project::project(
                &model,
                args.tuned.as_deref(),
                &data,
                options,
                &device,
                progress,
                never,
            )
        })
    })?;
    if args.run.json {
        return super::print_json(&result);
    }
    let [a, b] = result.explained_variance_ratio;
    println!(
        "{} rows at layer {}: the two axes hold {:.1}% and {:.1}% of the variance",
        result.points.len(),
        result.layer,
        a * 100.0,
        b * 100.0
    );
    if let Some(stages) = &result.checkpoints {
        let names: Vec<String> = stages
            .iter()
            .map(|s| match (s.tuned, s.epoch) {
                (true, _) => "tuned".to_string(),
                (false, Some(e)) => format!("epoch {e}"),
                (false, None) => "?".to_string(),
            })
            .collect();
        println!("stages, aligned to the tuned model: {}", names.join(" → "));
    }
    Ok(())
}
