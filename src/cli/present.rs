//! `present LESSON`: the app in presentation mode; with `--export-dir`, one
//! picture per scene drawn headless (a handout); with `--screenshot`, a PNG
//! of one scene (checks).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use bertscope::export::{self, frame, Format};
use bertscope::lesson::{tuned_missing, Lesson};
use bertscope::ui::app::{AppOptions, ExportLook};
use bertscope::ui::present::{LessonStart, PresentLook, DEFAULT_ZOOM};
use bertscope::write_guard::Protected;

#[derive(Args)]
pub struct PresentArgs {
    /// The lesson file (TOML: a title, a model and [[scene]] tables).
    lesson: PathBuf,
    /// Start at this scene (1-based); with --export-dir, export only it.
    #[arg(long, value_parser = super::at_least::<1>)]
    scene: Option<usize>,
    /// The light high-contrast theme (projectors wash dark themes out).
    #[arg(long)]
    light: bool,
    /// How much larger than normal everything is drawn (+ and - change it).
    #[arg(long, default_value_t = DEFAULT_ZOOM, value_parser = zoom)]
    zoom: f32,
    /// Save a PNG of the window once the scene is shown, then exit.
    #[arg(long, conflicts_with = "export_dir")]
    screenshot: Option<PathBuf>,
    /// Write one picture per scene into this folder (scene-01.svg, …)
    /// headless, instead of opening the window: a handout.
    #[arg(long)]
    export_dir: Option<PathBuf>,
    /// The handout's pictures: svg (vector), png or pdf (vector, for LaTeX).
    #[arg(long, value_parser = ["svg", "png", "pdf"], default_value = "svg", requires = "export_dir")]
    format: String,
    /// Each picture is the whole frame with its control rows, not the figure alone.
    #[arg(long, requires = "export_dir")]
    with_controls: bool,
    /// Pixels per point for PNG: 1, 2 or 4.
    #[arg(long, default_value_t = 2.0, value_parser = super::export::scale, requires = "export_dir")]
    scale: f32,
    /// Width and height of each picture, in points.
    #[arg(long, default_value_t = 1280.0, requires = "export_dir")]
    width: f32,
    #[arg(long, default_value_t = 800.0, requires = "export_dir")]
    height: f32,
    #[arg(long, value_enum, default_value_t = bertscope::device::DeviceChoice::Auto)]
    device: bertscope::device::DeviceChoice,
}

fn zoom(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(z) if (0.5..=4.0).contains(&z) => Ok(z),
        Ok(z) => Err(format!("{z}: between 0.5 and 4")),
        Err(e) => Err(e.to_string()),
    }
}

pub fn present(args: PresentArgs) -> Result<()> {
    let lesson = Lesson::load(&args.lesson)?;
    let count = lesson.scenes.len();
    let scene = match args.scene {
        Some(n) if n > count => bail!("--scene {n}: the lesson has {count} scenes"),
        Some(n) => Some(n - 1),
        None => None,
    };
    let look = PresentLook {
        zoom: args.zoom,
        light: args.light,
    };
    if let Some(dir) = &args.export_dir {
        return handout(&args, &lesson, dir, scene, look);
    }
    let scene = scene.unwrap_or(0);
    let options = AppOptions {
        model: lesson.model_of(scene).map(str::to_string),
        fresh: true,
        screenshot: args.screenshot.clone(),
        device: Some(super::select_device(args.device)?),
        lesson: Some(LessonStart {
            lesson,
            scene,
            look,
        }),
        ..Default::default()
    };
    match bertscope::ui::run(options).map_err(|e| anyhow!("cannot open the window: {e}"))? {
        Some(Ok(path)) => {
            eprintln!("saved {}", path.display());
            Ok(())
        }
        Some(Err(message)) => Err(anyhow!(message)),
        None => Ok(()),
    }
}

/// One picture per scene (or only `only`), headless. A scene whose model
/// cannot be loaded still gets its picture, which says what is missing; the
/// handout goes on and a warning names the scene.
fn handout(
    args: &PresentArgs,
    lesson: &Lesson,
    dir: &Path,
    only: Option<usize>,
    look: PresentLook,
) -> Result<()> {
    let format = Format::parse(&args.format).ok_or_else(|| anyhow!("--format {}", args.format))?;
    if !(64.0..=8192.0).contains(&args.width) || !(64.0..=8192.0).contains(&args.height) {
        bail!("--width/--height: between 64 and 8192 points");
    }
    let protected = protected(lesson, &args.lesson);
    let extension = args.format.as_str();
    let name = |i: usize| dir.join(format!("scene-{:02}.{extension}", i + 1));
    bertscope::write_guard::check_output_file(&name(0), &protected)
        .map_err(|e| anyhow!("--export-dir: {e}"))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow!("--export-dir {}: cannot create it: {e}", dir.display()))?;
    let device = super::select_device(args.device)?;
    let scenes: Vec<usize> = match only {
        Some(n) => vec![n],
        None => (0..lesson.scenes.len()).collect(),
    };
    let mut missing = 0;
    for &i in &scenes {
        let position = format!("scene {} of {}", i + 1, lesson.scenes.len());
        let scene = &lesson.scenes[i];
        let mut caption = scene.caption.clone().unwrap_or(position.clone());
        let tuned = scene.tuned.as_deref();
        if let Some(missing) = tuned.and_then(|d| tuned_missing(d, lesson.model_of(i))) {
            eprintln!("warning: {position}: {missing}");
            caption = format!("{caption} · {missing}");
        }
        let options = AppOptions {
            model: lesson.model_of(i).map(str::to_string),
            fresh: true,
            device: Some(device.clone()),
            lesson: Some(LessonStart {
                lesson: lesson.clone(),
                scene: i,
                look,
            }),
            export: Some(ExportLook {
                caption: Some(caption),
                with_controls: args.with_controls,
                light: args.light,
                transparent: false,
            }),
            ..Default::default()
        };
        let size = egui::vec2(args.width, args.height);
        let (picture, problem) = frame::render_even_failed(options, size, args.scale)
            .map_err(|e| anyhow!("{position}: {e}"))?;
        if let Some(problem) = problem {
            missing += 1;
            eprintln!("warning: {position}: {problem} (its picture says so)");
        }
        let path = name(i);
        let bytes = export::encode(&picture, format)?;
        export::write(&path, &bytes, &protected).map_err(|e| anyhow!("--export-dir: {e}"))?;
        eprintln!("wrote {}", path.display());
    }
    if missing > 0 {
        eprintln!(
            "{missing} of {} pictures show a scene that could not be drawn (see the warnings)",
            scenes.len()
        );
    }
    Ok(())
}

/// What the handout must not write over: the lesson, its models, tuned
/// models and data files.
fn protected(lesson: &Lesson, file: &Path) -> Protected {
    let mut protected = Protected::new().with("the lesson", file);
    let models = (0..lesson.scenes.len()).filter_map(|i| lesson.model_of(i));
    for dir in models.filter_map(|m| bertscope::hub::resolve(m).ok()) {
        protected.add("a model of the lesson", &dir);
    }
    for scene in &lesson.scenes {
        if let Some(tuned) = &scene.tuned {
            protected.add("a tuned model of the lesson", tuned);
        }
        if let Some(data) = &scene.data {
            protected.add("a data file of the lesson", data);
        }
    }
    protected
}
