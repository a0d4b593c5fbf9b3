//! `bertscope predict`: a fine-tuned classifier over a data file, written as
//! an `id,label[,score]` CSV through the write guard.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::ProgressBar;

use bertscope::device::DeviceChoice;
use bertscope::predict::CsvLayout;
use bertscope::write_guard::{self, Protected};

use super::data_args::DataArgs;

#[derive(Args)]
pub struct PredictArgs {
    /// A fine-tuned classification model.
    #[arg(long)]
    model: String,
    /// Rows to classify (TSV or CSV with a header; labels not needed).
    #[arg(long)]
    input: PathBuf,
    /// Output CSV: <id>,<label>,score, where <id> is the input's id column
    /// header (--id-column; `id` when the input has none). An existing file is replaced (written to a
    /// temporary file first, then renamed over it); the input file, the
    /// model's files and the current directory are always refused.
    #[arg(long)]
    output: PathBuf,
    /// Header of the label column in the output (e.g. Category).
    #[arg(long, default_value = "label")]
    label_header: String,
    /// Leave out the score column (e.g. a two-column Kaggle submission:
    /// `--id-column Id --label-header Category --no-score`).
    #[arg(long)]
    no_score: bool,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    #[command(flatten)]
    precision: super::PrecisionArg,
    #[command(flatten)]
    data: DataArgs,
}

pub fn predict(args: PredictArgs) -> Result<()> {
    let model_dir = bertscope::hub::resolve(&args.model)?;
    let protected = Protected::new()
        .with("the input file", &args.input)
        .with("the model", &model_dir);
    write_guard::check_output_file(&args.output, &protected)?;
    let device = super::select_device(args.device)?;
    let precision = args.precision.checked(&device)?;
    let model = bertscope::LoadedModel::load(&args.model, &device)?;
    if model.model.classifier.is_none() {
        bail!(
            "{}: this checkpoint has no classification head (no `classifier.weight`)",
            model.dir.display()
        );
    }
    let data = args.data.read(&args.input, false)?;
    let bar = ProgressBar::new(data.examples.len() as u64);
    let predictions = bertscope::model::precision::scoped(precision, || {
        bertscope::predict::predict(&model, &data, args.batch_size, &mut |done, _| {
            bar.set_position(done as u64)
        })
    })?;
    bar.finish_and_clear();
    // Checked again: the input may have been moved into place meanwhile.
    write_guard::check_output_file(&args.output, &protected)?;
    let layout = CsvLayout {
        id_header: args.data.id_header(&args.input)?,
        label_header: args.label_header.clone(),
        score: !args.no_score,
    };
    bertscope::predict::write_csv(&args.output, &predictions, &layout)
        .with_context(|| "writing predictions")?;
    eprintln!(
        "wrote {} predictions to {}",
        predictions.len(),
        args.output.display()
    );
    Ok(())
}
