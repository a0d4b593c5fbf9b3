//! `explain` (per-input explanations, or head importance over a data file)
//! and `compare` (head changes between a base and a fine-tuned model).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{anyhow, Result};
use clap::Args;
use serde_json::{json, Value};

use bertscope::compare;
use bertscope::explain::{self, Explanation, HeadImportance};
use bertscope::{Inspect, LoadedModel};

use super::data_args::DataArgs;
use super::{print_json, warn_truncated, ModelArgs};

#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// First sentence (a literal [MASK] is the mask token).
    #[arg(long, required_unless_present = "head_importance")]
    text_a: Option<String>,
    /// Optional second sentence.
    #[arg(long)]
    text_b: Option<String>,
    /// The label (or, at a [MASK], the token) to explain; default: the prediction.
    #[arg(long)]
    target: Option<String>,
    /// Instead of one input: each head's importance over a labelled TSV/CSV
    /// (mean |∂loss/∂gate|; Michel et al. 2019).
    #[arg(long, value_name = "DATA", conflicts_with_all = ["text_a", "text_b", "target"])]
    head_importance: Option<PathBuf>,
    /// With --head-importance: use only the first N rows (default: all).
    #[arg(long, value_parser = super::at_least::<1>, requires = "head_importance")]
    max_rows: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn explain(args: ExplainArgs) -> Result<()> {
    let model = args.model.load()?;
    if let Some(path) = &args.head_importance {
        let options = args.data.options(true)?;
        let limit = args.max_rows.unwrap_or(usize::MAX);
        let mut bar = progress("rows");
        let cancel = AtomicBool::new(false);
        let result =
            explain::head_importance_of_file(&model, path, &options, limit, &cancel, &mut bar)?;
        eprintln!();
        return if args.json {
            print_json(&json!({
                "head_importance": result.to_rows(),
                "rows": result.rows,
            }))
        } else {
            print_importance(&result);
            Ok(())
        };
    }
    let text_a = args.text_a.as_deref().unwrap_or_default();
    let mut bar = progress("integrated-gradients points");
    let result = explain::explain(
        &model,
        text_a,
        args.text_b.as_deref(),
        args.target.as_deref(),
        &mut bar,
    )?;
    eprintln!();
    warn_truncated(result.truncated, &model);
    if args.json {
        print_json(&result)
    } else {
        print_explanation(&result);
        Ok(())
    }
}

/// A progress line on stderr when it is a terminal.
fn progress(what: &'static str) -> impl FnMut(usize, usize) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            eprint!("\r{done}/{total} {what}");
            let _ = std::io::stderr().flush();
        }
    }
}

fn print_explanation(e: &Explanation) {
    println!(
        "target: {} (index {}), logit {:.4}",
        e.target.label, e.target.index, e.target_logit
    );
    println!(
        "{}",
        explain::summary::sentence(&e.target.label, &e.tokens, &e.integrated_gradients, 3)
    );
    println!(
        "\n  {:>3}  {:<16} {:>12} {:>12} {:>10}",
        "#", "token", "int. grad.", "grad-attn", "rollout"
    );
    for (i, token) in e.tokens.iter().enumerate() {
        let rollout = e
            .rollout
            .first()
            .and_then(|r| r.get(i))
            .copied()
            .unwrap_or(0.0);
        println!(
            "  {i:>3}  {token:<16} {:>12.5} {:>12.5} {:>10.4}",
            e.integrated_gradients[i], e.grad_attention[i], rollout
        );
    }
    println!(
        "\nintegrated gradients: {} points; completeness gap (ig_delta) {:.2e}",
        explain::IG_STEPS,
        e.ig_delta
    );
    println!("rollout column: how much of each token reaches [CLS] through all layers");
}

fn print_importance(r: &HeadImportance) {
    println!(
        "head importance over {} rows (mean |∂loss/∂gate|), layers × heads:",
        r.rows
    );
    for layer in 0..r.layers {
        let cells: Vec<String> = (0..r.heads)
            .map(|h| format!("{:7.4}", r.get(layer, h)))
            .collect();
        println!("  layer {layer:>2}: {}", cells.join(" "));
    }
}

#[derive(Args)]
pub struct CompareArgs {
    /// The model before fine-tuning.
    #[arg(long)]
    base: String,
    /// The fine-tuned model (a directory bertscope or transformers saved).
    #[arg(long)]
    tuned: String,
    #[arg(long)]
    text_a: String,
    #[arg(long)]
    text_b: Option<String>,
    #[arg(long, value_enum, default_value_t = bertscope::device::DeviceChoice::Auto)]
    device: bertscope::device::DeviceChoice,
    /// Also each head's importance before and after fine-tuning over a
    /// labelled TSV/CSV (mean |∂loss/∂gate|; Michel et al. 2019).
    #[arg(long, value_name = "DATA")]
    head_importance: Option<PathBuf>,
    /// With --head-importance: use only the first N rows (default: all).
    #[arg(long, value_parser = super::at_least::<1>, requires = "head_importance")]
    max_rows: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let device = super::select_device(args.device)?;
    let load = |spec: &str, flag: &str| {
        LoadedModel::load(spec, &device).map_err(|e| anyhow!("--{flag}: {e}"))
    };
    let (base, tuned) = (load(&args.base, "base")?, load(&args.tuned, "tuned")?);
    let initial = tuned.dir.join("epochs").join("epoch-0");
    let initial = initial
        .join("config.json")
        .is_file()
        .then(|| LoadedModel::load_dir("epoch-0", &initial, &device).ok())
        .flatten();
    let models = compare::Models {
        base: &base,
        tuned: &tuned,
        initial: initial.as_ref(),
    };
    let (a, b) = (args.text_a.as_str(), args.text_b.as_deref());
    let base_analysis = base.analyze(a, b, &[], 5, &Inspect::default())?;
    let comparison = compare::compare_input(
        (&base, &base_analysis),
        &tuned,
        initial.as_ref(),
        (a, b),
        (&[], 5),
        &bertscope::HeadSet::new(),
    )?;
    let changes = comparison.changes.clone().map_err(|e| anyhow!(e))?;
    warn_truncated(base_analysis.attention.truncated, &base);
    let mut bar = progress_by_side("integrated-gradients points");
    let explained = compare::explain_before_after(models, (a, b), &mut bar);
    eprintln!();
    let explained = BeforeAfter {
        before: side(explained.before, "before")?,
        after: side(explained.after, "after")?,
        before_source: explained.before_source,
    };
    let importance = match &args.head_importance {
        Some(path) => Some(importance_sides(&args, path, models)?),
        None => None,
    };
    let out = Compared {
        base: base_analysis,
        comparison,
        changes,
        explained,
        importance,
    };
    if args.json {
        return print_json(&out.to_json()?);
    }
    out.print();
    Ok(())
}

/// Everything `compare` found, for printing.
struct Compared {
    base: bertscope::engine::Analysis,
    comparison: compare::Comparison,
    changes: compare::HeadChanges,
    explained: BeforeAfter<Explanation>,
    importance: Option<BeforeAfter<HeadImportance>>,
}

impl Compared {
    /// Layers × heads, one row per layer.
    fn rows(&self) -> Vec<Vec<f32>> {
        self.changes
            .values
            .chunks(self.changes.heads.max(1))
            .map(<[f32]>::to_vec)
            .collect()
    }

    fn to_json(&self) -> Result<Value> {
        let ranking: Vec<Value> = self
            .changes
            .ranked()
            .into_iter()
            .map(|(layer, head, change)| json!({"layer": layer, "head": head, "change": change}))
            .collect();
        let c = &self.comparison;
        let mut out = json!({
            "tokens": self.base.attention.tokens,
            "head_changes": self.rows(),
            "ranking": ranking,
            "before": c.before.as_ref().map(|c| &c.predictions),
            "before_source": c.before_source,
            "after": c.after.as_ref().map(|c| &c.predictions),
            "masks_before": self.base.masks,
            "masks_after": c.tuned.masks,
        });
        if let Some(object) = out.as_object_mut() {
            let e = &self.explained;
            for (name, e) in [("before", &e.before), ("after", &e.after)] {
                if let Some(e) = e {
                    object.insert(format!("explain_{name}"), serde_json::to_value(e)?);
                }
            }
            if let Some(importance) = &self.importance {
                let sides = [("before", &importance.before), ("after", &importance.after)];
                for (name, r) in sides {
                    if let Some(r) = r {
                        object.insert(format!("head_importance_{name}"), json!(r.to_rows()));
                    }
                }
            }
        }
        Ok(out)
    }

    fn print(&self) {
        println!(
            "head changes (mean Jensen–Shannon divergence of attention rows, bits), layers × heads:"
        );
        for (layer, row) in self.rows().iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:6.3}")).collect();
            println!("  layer {layer:>2}: {}", cells.join(" "));
        }
        println!("most changed:");
        for (layer, head, change) in self.changes.ranked().into_iter().take(10) {
            println!("  layer {layer} head {head}: {change:.3}");
        }
        let show = |name: &str, c: &Option<bertscope::engine::ClassifyResult>| {
            if let Some(c) = c {
                let parts: Vec<String> = c
                    .predictions
                    .iter()
                    .map(|p| format!("{} {:.3}", p.label, p.score))
                    .collect();
                println!("{name}: {}", parts.join(", "));
            }
        };
        let c = &self.comparison;
        show(&format!("before ({})", c.before_source), &c.before);
        show("after", &c.after);
        print_sides(&self.explained, self.importance.as_ref());
    }
}

/// One side's result, its error naming the side; `None` without a classifier.
fn side<T>(result: Option<std::result::Result<T, String>>, name: &str) -> Result<Option<T>> {
    result
        .transpose()
        .map_err(|e| anyhow!("explaining the {name} classifier: {e}"))
}

/// Head importance of both sides over `--head-importance DATA`.
fn importance_sides(
    args: &CompareArgs,
    path: &std::path::Path,
    models: compare::Models<'_>,
) -> Result<BeforeAfter<HeadImportance>> {
    let options = args.data.options(true)?;
    let limit = args.max_rows.unwrap_or(usize::MAX);
    let mut bar = progress_by_side("rows");
    let cancel = AtomicBool::new(false);
    let r = compare::importance_before_after(models, path, &options, limit, &cancel, &mut bar)?;
    eprintln!();
    let named = |e: String, name: &str| anyhow!("--head-importance ({name}): {e}");
    Ok(BeforeAfter {
        before: r.before.transpose().map_err(|e| named(e, "before"))?,
        after: r.after.transpose().map_err(|e| named(e, "after"))?,
        before_source: r.before_source,
    })
}

/// Both sides' results, unwrapped (errors already reported).
struct BeforeAfter<T> {
    before: Option<T>,
    before_source: String,
    after: Option<T>,
}

/// A progress line on stderr per side, when it is a terminal.
fn progress_by_side(what: &'static str) -> impl FnMut(compare::Side, usize, usize) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    move |side, done, total| {
        if tty {
            eprint!("\r{}: {done}/{total} {what}  ", side.name());
            let _ = std::io::stderr().flush();
        }
    }
}

fn print_sides(
    explained: &BeforeAfter<Explanation>,
    importance: Option<&BeforeAfter<HeadImportance>>,
) {
    let sentence = |e: &Explanation| {
        explain::summary::sentence(&e.target.label, &e.tokens, &e.integrated_gradients, 3)
    };
    match &explained.before {
        Some(e) => println!("before ({}): {}", explained.before_source, sentence(e)),
        None => println!("before: {}", explained.before_source),
    }
    if let Some(e) = &explained.after {
        println!("after: {}", sentence(e));
    }
    let Some(importance) = importance else {
        return;
    };
    for (name, r) in [("before", &importance.before), ("after", &importance.after)] {
        if let Some(r) = r {
            print!("{name}: ");
            print_importance(r);
        }
    }
    if let (Some(b), Some(a)) = (&importance.before, &importance.after) {
        println!("heads the task came to rely on (largest increase in importance):");
        for (layer, head, gain) in compare::importance_gains(b, a).into_iter().take(5) {
            println!(
                "  layer {layer} head {head}: {:+.4} ({:.4} → {:.4})",
                gain,
                b.get(layer, head),
                a.get(layer, head)
            );
        }
    }
}

/// `attention --json`: the maps, plus `queries`/`keys` with `--neurons` and
/// `words`/`word_attentions` with `--words`.
pub fn attention_json(result: &bertscope::engine::AttentionResult, words: bool) -> Result<Value> {
    let mut value = serde_json::to_value(result)?;
    let Some(object) = value.as_object_mut() else {
        return Ok(value);
    };
    if let Some(n) = &result.neurons {
        let rows = |flat: &[f32]| -> Vec<Vec<f32>> {
            flat.chunks(n.dim.max(1)).map(<[f32]>::to_vec).collect()
        };
        object.insert("neurons".into(), json!({"layer": n.layer, "head": n.head}));
        object.insert("queries".into(), json!(rows(&n.queries)));
        object.insert("keys".into(), json!(rows(&n.keys)));
    }
    if words {
        let grouped = explain::words::group(&result.tokens);
        object.insert("words".into(), json!(grouped.words));
        object.insert(
            "word_attentions".into(),
            serde_json::to_value(grouped.merge_maps(&result.attentions))?,
        );
    }
    Ok(value)
}
