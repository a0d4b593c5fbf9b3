//! Command-line parsing (clap) into typed settings, then one engine call per command.

mod bench;
mod cpu;
mod data_args;
mod explain;
mod export;
mod finetune;
mod heads;
mod human;
mod index;
mod predict;
mod present;
mod project;
mod watch;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use bertscope::device::{self, DeviceChoice};
use bertscope::model::head_mask::{parse_pair, HeadSet};
use bertscope::model::precision::Precision;
use bertscope::{Inspect, LoadedModel};

#[derive(Parser)]
#[command(
    name = "bertscope",
    version,
    about = "See inside BERT: attention, masked-LM, classification"
)]
struct Cli {
    /// Without a subcommand, bertscope opens the app.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the app (the default without a subcommand).
    Gui(GuiArgs),
    /// Every layer's and head's attention for a sentence or a pair.
    Attention {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        heads: MaskHeads,
        /// Add one head's query and key vectors (0-based LAYER:HEAD).
        #[arg(long, value_name = "L:H", value_parser = parse_head)]
        neurons: Option<(usize, usize)>,
        /// Add word-level attention (a word = a token and its ## pieces).
        #[arg(long)]
        words: bool,
    },
    /// Predict every [MASK] in the input.
    FillMask {
        #[command(flatten)]
        input: InputArgs,
        /// How many candidates to show per mask.
        #[arg(long, default_value_t = 5, value_parser = at_least::<1>)]
        top_k: usize,
        #[command(flatten)]
        heads: MaskHeads,
    },
    /// Label probabilities from a classification checkpoint.
    Classify {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        heads: MaskHeads,
    },
    /// Why the model predicts what it does: rollout, gradient-weighted
    /// attention and integrated gradients; or head importance over a data file.
    Explain(explain::ExplainArgs),
    /// How each attention head changed between a base and a fine-tuned model.
    Compare(explain::CompareArgs),
    /// Draw a view headless (no display, no GPU) to SVG or PNG.
    Export(export::ExportArgs),
    /// Show a lesson full screen, scene by scene (or write it as pictures).
    Present(present::PresentArgs),
    /// Fine-tune a classifier on a TSV/CSV and save a Hugging Face checkpoint.
    Finetune(finetune::FinetuneArgs),
    /// Classify every row of a TSV/CSV with a fine-tuned model: CSV id,label[,score].
    Predict(predict::PredictArgs),
    /// What each head attends to over a data file ([CLS], [SEP], punctuation,
    /// itself, its neighbours; entropy), as Clark et al. (2019) measure it.
    Heads(heads::HeadsArgs),
    /// Which heads resolve coreference: each head's choice of antecedent for
    /// marked pronouns, against the nearest-candidate and chance baselines.
    Coref(heads::CorefArgs),
    /// Follow a Trainer run (the Trainer kit's, or any) live: progress, loss,
    /// learning rate, dev metrics, ETA, checkpoints.
    Watch(watch::WatchArgs),
    /// Store the hidden state of every token of a data file at chosen layers
    /// (f16), for `search`; a stopped build resumes.
    Index(index::IndexArgs),
    /// The tokens of an index used most like one token of an input (cosine
    /// of hidden states at one layer, exact top K).
    Search(index::SearchArgs),
    /// A data file's rows in 2-D (PCA of pooled hidden states); with
    /// --tuned, the base, each kept epoch and the tuned model, aligned.
    Project(project::ProjectArgs),
    /// List the models found in ./models and the Hugging Face cache.
    Models {
        #[arg(long)]
        json: bool,
    },
    /// Time the forward pass (batch 1, attentions returned), with --train
    /// the fine-tuning throughput, with --data the preparation of a data file.
    Bench(bench::BenchArgs),
    /// What this CPU runs: its name, the instruction sets the kernels use,
    /// the bf16 kernel taken (and why not AMX tiles), bf16 against fp32.
    Cpu(cpu::CpuArgs),
}

#[derive(Args, Default)]
struct GuiArgs {
    /// Model directory, name under ./models, or Hub id in the local cache
    /// (default: the last one used, else the first `bertscope models` finds).
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    text_a: Option<String>,
    #[arg(long)]
    text_b: Option<String>,
    /// The view to open: tokens, head, model, matrix, mlm, explain, heads, data, train or compare.
    #[arg(long, value_parser = ["head", "model", "matrix", "mlm", "explain", "train", "compare", "tokens", "heads", "data"])]
    view: Option<String>,
    /// A fine-tuned directory to compare with the base model (compare view;
    /// its curves show in the training view).
    #[arg(long)]
    tuned: Option<std::path::PathBuf>,
    /// A data file (TSV/CSV) to preview in the training view (with
    /// `--view explain`: head importance is computed over it).
    #[arg(long)]
    train_data: Option<std::path::PathBuf>,
    /// Follow a Trainer run's output folder in the training view (the
    /// Trainer kit's, or any Trainer run's).
    #[arg(long, value_name = "DIR")]
    watch: Option<std::path::PathBuf>,
    /// The Data view's stage: 0 the base model, then each kept epoch, the
    /// last the tuned model (the default); a fraction blends two.
    #[arg(long, value_name = "S")]
    stage: Option<f32>,
    #[arg(long)]
    layer: Option<usize>,
    /// Show only this head (and focus it in the matrix view).
    #[arg(long)]
    head: Option<usize>,
    /// Switch these heads off (0-based LAYER:HEAD, comma-separated).
    #[arg(long, value_name = "L:H,L:H", value_parser = parse_heads)]
    mask_heads: Option<HeadSet>,
    /// Open the head view's neuron panel on this head (0-based LAYER:HEAD).
    #[arg(long, value_name = "L:H", value_parser = parse_head)]
    neurons: Option<(usize, usize)>,
    /// The neuron panel's query token (its position, [CLS] = 0).
    #[arg(long, requires = "neurons")]
    query_token: Option<usize>,
    /// Draw words (a token and its ## pieces) instead of tokens.
    #[arg(long)]
    words: bool,
    /// Save a PNG of the window once the result is shown, then exit.
    #[arg(long)]
    screenshot: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct ModelArgs {
    /// Model directory, name under ./models, or Hugging Face Hub id in the local cache.
    #[arg(long)]
    model: String,
    /// Where to run the model.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args)]
struct InputArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// First sentence (a literal [MASK] is the mask token).
    #[arg(long)]
    text_a: String,
    /// Optional second sentence: the input becomes [CLS] a [SEP] b [SEP].
    #[arg(long)]
    text_b: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct MaskHeads {
    /// Switch these heads off (0-based LAYER:HEAD, comma-separated): their
    /// context is zeroed, as `head_mask = 0` does in transformers.
    #[arg(long, value_name = "L:H,L:H", value_parser = parse_heads)]
    mask_heads: Option<HeadSet>,
}

impl MaskHeads {
    /// The inspection for `model`, each head checked against its shape.
    fn inspect(&self, model: &LoadedModel, neurons: Option<(usize, usize)>) -> Result<Inspect> {
        let (layers, heads) = (model.config().num_layers(), model.config().num_heads());
        let ablate = self.mask_heads.clone().unwrap_or_default();
        ablate
            .check(layers, heads)
            .map_err(|e| anyhow::anyhow!("--mask-heads: {e}"))?;
        if let Some(pair) = neurons {
            HeadSet::from_iter([pair])
                .check(layers, heads)
                .map_err(|e| anyhow::anyhow!("--neurons: {e}"))?;
        }
        Ok(Inspect { ablate, neurons })
    }
}

fn parse_heads(text: &str) -> Result<HeadSet, String> {
    HeadSet::parse(text).map_err(|e| e.to_string())
}

fn parse_head(text: &str) -> Result<(usize, usize), String> {
    parse_pair(text).map_err(|e| e.to_string())
}

/// A clap value parser for integers of at least `MIN`.
pub(crate) fn at_least<const MIN: usize>(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= MIN => Ok(n),
        Ok(n) => Err(format!("{n} is less than {MIN}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The device, with the flag named when it is not available.
pub(crate) fn select_device(choice: DeviceChoice) -> Result<candle_core::Device> {
    device::select(choice).map_err(|e| anyhow::anyhow!("--device: {e}"))
}

/// `--precision` of a command that runs the model forward only (the
/// dataset passes, `predict`).
#[derive(Args)]
pub(crate) struct PrecisionArg {
    /// The linear layers' products: fp32 (the default; the numbers
    /// `transformers` computes) or bf16 operands with f32 sums, as
    /// `finetune --precision bf16` (CPUs with AVX-512-BF16 or AMX-BF16;
    /// the command says whether it pays on this one).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
}

impl PrecisionArg {
    /// The precision asked for, refused where `device` cannot run it: the
    /// commands check it before they read a model or data.
    pub(crate) fn checked(&self, device: &candle_core::Device) -> Result<Precision> {
        check_precision(self.precision, device)?;
        Ok(self.precision)
    }
}

/// Refuses a `--precision` this device cannot run; for bf16, says whether
/// it pays on this CPU (measured, not assumed): a note where it does, a
/// warning where fp32 is as fast or faster.
pub(crate) fn check_precision(precision: Precision, device: &candle_core::Device) -> Result<()> {
    precision
        .check(device)
        .map_err(|e| anyhow::anyhow!("--precision {}: {e}", precision.name()))?;
    if precision == Precision::Bf16 {
        if let Some(speed) = bertscope::model::bf16_speed::measure() {
            let mark = if speed.pays() { "note" } else { "warning" };
            eprintln!("{mark}: --precision bf16: {}", speed.verdict());
        }
    }
    Ok(())
}

impl ModelArgs {
    fn load(&self) -> Result<LoadedModel> {
        let device = select_device(self.device)?;
        Ok(LoadedModel::load(&self.model, &device)?)
    }
}

fn warn_truncated(truncated: bool, model: &LoadedModel) {
    if truncated {
        eprintln!(
            "warning: input truncated to {} tokens (the model's maximum length)",
            model.config().max_length()
        );
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn gui(args: GuiArgs) -> Result<()> {
    let options = bertscope::ui::AppOptions {
        model: args.model,
        text_a: args.text_a,
        text_b: args.text_b,
        view: args
            .view
            .as_deref()
            .and_then(bertscope::ui::state::View::parse),
        layer: args.layer,
        head: args.head,
        fresh: args.screenshot.is_some(),
        screenshot: args.screenshot,
        device: Some(select_device(args.device)?),
        tuned: args.tuned,
        train_data: args.train_data,
        watch: args.watch,
        stage: args.stage,
        ablate: args.mask_heads.unwrap_or_default(),
        neurons: args.neurons,
        query_token: args.query_token,
        words: args.words,
        ..Default::default()
    };
    match bertscope::ui::run(options).map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))? {
        Some(Ok(path)) => {
            eprintln!("saved {}", path.display());
            Ok(())
        }
        Some(Err(message)) => Err(anyhow::anyhow!(message)),
        None => Ok(()),
    }
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return gui(GuiArgs::default());
    };
    match command {
        Command::Gui(args) => gui(args),
        Command::Attention {
            input,
            heads,
            neurons,
            words,
        } => {
            let model = input.model.load()?;
            let inspect = heads.inspect(&model, neurons)?;
            let result = model.attention(&input.text_a, input.text_b.as_deref(), &inspect)?;
            warn_truncated(result.truncated, &model);
            if input.json {
                print_json(&explain::attention_json(&result, words)?)
            } else {
                human::attention(&result, words);
                Ok(())
            }
        }
        Command::FillMask {
            input,
            top_k,
            heads,
        } => {
            let model = input.model.load()?;
            let inspect = heads.inspect(&model, None)?;
            let result =
                model.fill_mask(&input.text_a, input.text_b.as_deref(), top_k, &inspect)?;
            warn_truncated(result.truncated, &model);
            if input.json {
                print_json(&result)
            } else {
                human::fill_mask(&result);
                Ok(())
            }
        }
        Command::Classify { input, heads } => {
            let model = input.model.load()?;
            let inspect = heads.inspect(&model, None)?;
            let result = model.classify(&input.text_a, input.text_b.as_deref(), &inspect)?;
            warn_truncated(result.truncated, &model);
            if input.json {
                print_json(&result)
            } else {
                human::classify(&result);
                Ok(())
            }
        }
        Command::Models { json } => {
            let (models, problems) = bertscope::catalog::scan();
            for problem in &problems {
                eprintln!("warning: skipped {problem}");
            }
            if json {
                print_json(&models)
            } else {
                human::models(&models);
                Ok(())
            }
        }
        Command::Finetune(args) => finetune::finetune(args),
        Command::Predict(args) => predict::predict(args),
        Command::Bench(args) => bench::run(args),
        Command::Cpu(args) => cpu::cpu(args),
        Command::Explain(args) => explain::explain(args),
        Command::Compare(args) => explain::compare(args),
        Command::Export(args) => export::export(args),
        Command::Present(args) => present::present(args),
        Command::Watch(args) => watch::watch(args),
        Command::Heads(args) => heads::heads(args),
        Command::Coref(args) => heads::coref(args),
        Command::Index(args) => index::index(args),
        Command::Search(args) => index::search(args),
        Command::Project(args) => project::project(args),
    }
}
