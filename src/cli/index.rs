//! `bertscope index` (store every token's hidden states of a data file) and
//! `bertscope search` (the stored tokens nearest one token of an input).

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;

use bertscope::device::DeviceChoice;
use bertscope::index::{self, BuildOptions, Index};
use bertscope::model::precision::Precision;
use bertscope::write_guard::Protected;
use bertscope::BertError;

use super::data_args::DataArgs;
use super::heads::{with_rows_bar, LimitArgs, RunArgs};

#[derive(Args)]
pub struct IndexArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Rows to index (TSV/CSV with a header, or .txt one row a line).
    #[arg(long)]
    data: PathBuf,
    /// The index folder to write (or to resume, when a build there stopped).
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    columns: DataArgs,
    /// Layers to store: `all`, or a comma list such as `0,3,6` (0 is the
    /// embeddings' output, i layer i's, as `hidden_states` numbers them).
    #[arg(long, default_value = "all")]
    layers: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// Replace an existing index (only an index is ever replaced).
    #[arg(long)]
    overwrite: bool,
    // Recorded in the index: a resumed build must use the same, and
    // searches compute their query with it.
    #[command(flatten)]
    precision: super::PrecisionArg,
}

#[derive(Args)]
pub struct SearchArgs {
    /// An index folder written by `bertscope index`.
    #[arg(long)]
    index: PathBuf,
    /// The query's first sentence.
    #[arg(long)]
    text_a: String,
    /// The query's second sentence.
    #[arg(long)]
    text_b: Option<String>,
    /// The query token: its position in the input as the model sees it ([CLS] is 0).
    #[arg(long)]
    token: usize,
    /// The layer to search (one the index stores).
    #[arg(long)]
    layer: usize,
    /// Hits to return.
    #[arg(long, default_value_t = 10, value_parser = super::at_least::<1>)]
    top: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `all` or a comma list of layer numbers.
fn parse_layers(text: &str) -> Result<Option<Vec<usize>>> {
    if text.trim() == "all" {
        return Ok(None);
    }
    text.split(',')
        .map(|part| {
            part.trim().parse::<usize>().map_err(|_| {
                anyhow!(
                    "--layers: `{part}` is not a layer number (give `all` or a list such as 0,3,6)"
                )
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

pub fn index(args: IndexArgs) -> Result<()> {
    let layers = parse_layers(&args.layers)?;
    let (model, precision) = args.run.load_checked(&args.precision)?;
    let data = args.columns.read(&args.data, false)?;
    let mut protected = Protected::new();
    protected.add("the data file", &args.data);
    protected.add("the model", &model.dir);
    let options = BuildOptions {
        source: args.columns.source(&data)?,
        layers,
        limits: args.limits.limits(),
        overwrite: args.overwrite,
        chunk_rows: None,
        model_fingerprint: None,
        precision,
    };
    let built = with_rows_bar(|progress, never| {
        index::build(
            &model,
            &data,
            &args.output,
            &protected,
            &options,
            progress,
            never,
        )
    })
    .map_err(|e| match e {
        e @ BertError::OutputExists { .. } => {
            anyhow!("{e}; pass --overwrite to build it again (only an index is ever replaced)")
        }
        other => other.into(),
    })?;
    let m = &built.manifest;
    if args.run.json {
        return super::print_json(m);
    }
    if built.resumed_at > 0 {
        println!("resumed at row {}", built.resumed_at);
    }
    let size = m.tokens * m.bytes_per_token();
    println!(
        "{}: {} rows, {} tokens, layers {:?}, {:.1} MB of vectors ({} bytes a token), {} products",
        args.output.display(),
        m.rows,
        m.tokens,
        m.layers,
        size as f64 / 1e6,
        m.bytes_per_token(),
        m.precision.name()
    );
    Ok(())
}

pub fn search(args: SearchArgs) -> Result<()> {
    let index = Index::open(&args.index)?;
    index.manifest.check_layer(args.layer)?;
    let device = super::select_device(args.device)?;
    let model = index.load_model(&device)?;
    let query = index.query(
        &model,
        &args.text_a,
        args.text_b.as_deref(),
        args.token,
        args.layer,
    )?;
    if query.precision != index.manifest.precision {
        eprintln!(
            "warning: the index was computed with --precision {} and this CPU cannot run it; \
             the query is computed in {}, so its scores differ slightly from the index's own",
            index.manifest.precision.name(),
            query.precision.name()
        );
    }
    let vectors = index.load_layer(args.layer)?;
    let result = index.search(&vectors, &query, args.top, &model.tokenizer)?;
    if args.json {
        return super::print_json(&result);
    }
    let products = match query.precision {
        Precision::Fp32 => "",
        Precision::Bf16 => " (bf16 products)",
    };
    println!(
        "`{}` (token {}) at layer {}{products}: {} tokens searched in {:.1} ms",
        result.query.token,
        result.query.index,
        result.layer,
        vectors.len(),
        result.search_ms
    );
    for hit in &result.hits {
        let label = hit
            .label
            .as_deref()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default();
        println!(
            "  {:.4}  row {:>6} token {:>3} {:<12} {}{label}",
            hit.score,
            hit.row,
            hit.token_index,
            hit.word,
            marked(&hit.text, hit.chars)
        );
    }
    Ok(())
}

/// `text` with the characters `chars` between »«.
fn marked(text: &str, chars: [u32; 2]) -> String {
    let (start, end) = (chars[0] as usize, chars[1] as usize);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == start {
            out.push('»');
        }
        out.push(c);
        if i + 1 == end {
            out.push('«');
        }
    }
    out
}
