//! `export`: one view drawn headless (no display, no GPU) to SVG or PNG.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;

use bertscope::export::{self, frame, Format};
use bertscope::ui::app::{AppOptions, ExportLook};
use bertscope::ui::state::View;
use bertscope::write_guard::Protected;
use bertscope::HeadSet;

#[derive(Args)]
pub struct ExportArgs {
    /// Model directory, name under ./models, or Hub id in the local cache.
    #[arg(long)]
    model: String,
    #[arg(long)]
    text_a: String,
    #[arg(long)]
    text_b: Option<String>,
    /// The view to draw.
    #[arg(long, value_parser = ["head", "model", "matrix", "mlm", "compare", "explain", "tokens", "heads", "data"])]
    view: String,
    #[arg(long)]
    layer: Option<usize>,
    /// Show only this head (and focus it in the matrix view).
    #[arg(long)]
    head: Option<usize>,
    /// A fine-tuned model for the compare view (and the Data view's stages).
    #[arg(long)]
    tuned: Option<PathBuf>,
    /// The data file the Data view projects.
    #[arg(long)]
    data: Option<PathBuf>,
    /// svg (vector, editable text), png, or pdf (vector, for LaTeX);
    /// default: the output's extension.
    #[arg(long, value_parser = ["svg", "png", "pdf"])]
    format: Option<String>,
    /// The whole frame with its control rows, not the figure alone.
    #[arg(long)]
    with_controls: bool,
    /// The file to write (an existing file is replaced only if it is a picture).
    #[arg(long)]
    output: PathBuf,
    /// Pixels per point for PNG: 1, 2 or 4.
    #[arg(long, default_value_t = 2.0, value_parser = scale)]
    scale: f32,
    /// Width and height of the drawing, in points.
    #[arg(long, default_value_t = 1280.0)]
    width: f32,
    #[arg(long, default_value_t = 800.0)]
    height: f32,
    /// A light background (for slides and print) instead of the dark one.
    #[arg(long)]
    light: bool,
    /// No background at all (PNG with alpha).
    #[arg(long)]
    transparent: bool,
    /// Leave out the caption line (model, view, layer, head, input).
    #[arg(long)]
    no_caption: bool,
    /// Switch these heads off first (0-based L:H,L:H).
    #[arg(long, value_parser = |s: &str| HeadSet::parse(s).map_err(|e| e.to_string()))]
    mask_heads: Option<HeadSet>,
    /// Draw words instead of wordpieces.
    #[arg(long)]
    words: bool,
    /// Token positions to mask (masked-LM view), comma-separated.
    #[arg(long, value_delimiter = ',')]
    mask: Vec<usize>,
    #[arg(long, value_enum, default_value_t = bertscope::device::DeviceChoice::Auto)]
    device: bertscope::device::DeviceChoice,
}

pub(super) fn scale(text: &str) -> Result<f32, String> {
    match text {
        "1" => Ok(1.0),
        "2" => Ok(2.0),
        "4" => Ok(4.0),
        other => Err(format!("{other}: expected 1, 2 or 4")),
    }
}

pub fn export(args: ExportArgs) -> Result<()> {
    let format = match args.format.as_deref() {
        Some(name) => Format::parse(name),
        None => Format::of(&args.output),
    }
    .ok_or_else(|| {
        anyhow!(
            "--output {}: say --format svg, png or pdf (or name the file .svg, .png or .pdf)",
            args.output.display()
        )
    })?;
    if !(64.0..=8192.0).contains(&args.width) || !(64.0..=8192.0).contains(&args.height) {
        bail!("--width/--height: between 64 and 8192 points");
    }
    let view = View::parse(&args.view).ok_or_else(|| anyhow!("--view {}", args.view))?;
    if view == View::Compare && args.tuned.is_none() {
        bail!("--view compare needs --tuned DIR (the fine-tuned model to compare with)");
    }
    if view == View::Data && args.data.is_none() {
        bail!("--view data needs --data FILE (the rows to project)");
    }
    let model_dir = bertscope::hub::resolve(&args.model)?;
    let mut protected = Protected::new().with("the model", &model_dir);
    if let Some(tuned) = &args.tuned {
        protected.add("the tuned model", tuned);
    }
    if let Some(data) = &args.data {
        protected.add("the data file", data);
    }
    bertscope::write_guard::check_output_file(&args.output, &protected)
        .map_err(|e| anyhow!("--output: {e}"))?;
    let caption = (!args.no_caption).then(|| caption(&args, view));
    let options = AppOptions {
        model: Some(args.model.clone()),
        text_a: Some(args.text_a.clone()),
        text_b: args.text_b.clone(),
        view: Some(view),
        layer: args.layer,
        head: args.head,
        tuned: args.tuned.clone(),
        train_data: args.data.clone(),
        ablate: args.mask_heads.clone().unwrap_or_default(),
        words: args.words,
        masked: args.mask.clone(),
        fresh: true,
        device: Some(super::select_device(args.device)?),
        export: Some(ExportLook {
            caption,
            with_controls: args.with_controls,
            light: args.light,
            transparent: args.transparent,
        }),
        ..Default::default()
    };
    let size = egui::vec2(args.width, args.height);
    let picture = frame::render(options, size, args.scale).map_err(|e| anyhow!(e))?;
    let bytes = export::encode(&picture, format)?;
    export::write(&args.output, &bytes, &protected).map_err(|e| anyhow!("--output: {e}"))?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

/// "MODEL · view · layer L · head H · “A” / “B”", the model by its name.
fn caption(args: &ExportArgs, view: View) -> String {
    let heads: Vec<usize> = args.head.into_iter().collect();
    export::caption(&export::CaptionParts {
        model: &args.model,
        view: view.label(),
        layer: args.layer,
        heads: args.head.map(|_| heads.as_slice()),
        all_heads: usize::MAX,
        text_a: &args.text_a,
        text_b: args.text_b.as_deref(),
    })
}
