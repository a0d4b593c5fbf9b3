//! `bertscope watch OUTPUT`: a Trainer run followed live (the kit's runs and
//! plain Trainer runs), a progress line per logged step, until it finishes.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use bertscope::watch::follow::{follow, Update};
use bertscope::watch::{human_duration, RunSnapshot, WatchError, Watcher};

#[derive(Args)]
pub struct WatchArgs {
    /// A Trainer output folder: the kit's OUTPUT, or any Trainer run's output_dir.
    output: PathBuf,
    /// JSON: with --once one object; live, one object a line at each change.
    #[arg(long)]
    json: bool,
    /// Read the folder once, print, and exit.
    #[arg(long)]
    once: bool,
    /// Seconds between reads where the folder sends no change notifications
    /// (network mounts).
    #[arg(long, default_value_t = 2.0, value_parser = positive_seconds)]
    interval: f64,
}

fn positive_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s}: expected a positive number of seconds")),
    }
}

pub fn watch(args: WatchArgs) -> Result<()> {
    if args.once {
        let snapshot = Watcher::new(&args.output).refresh()?;
        return print_once(&snapshot, args.json);
    }
    if let Some(why) = never_a_run(&args.output) {
        bail!(why);
    }
    let mut shown = Shown::default();
    let stop = AtomicBool::new(false);
    let interval = Duration::from_secs_f64(args.interval);
    let mut on_change = |update: &Update| shown.show(update, &args.output, args.json);
    match follow(&args.output, interval, &stop, &mut on_change) {
        Some(last) if !args.json => {
            eprintln!("the run has finished: {}", args.output.display());
            if let Some(c) = last.checkpoints.iter().rev().find(|c| !c.gone) {
                eprintln!("last checkpoint: {}", c.path.display());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Why a folder that already holds files is not a run that may yet start
/// logging (an empty or missing folder is waited for).
fn never_a_run(dir: &Path) -> Option<String> {
    let names: Vec<String> = dir
        .read_dir()
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    // A Trainer's TensorBoard logs (`runs/`) may come before its first log.
    if names.iter().all(|n| n.starts_with('.') || n == "runs") {
        return None;
    }
    match Watcher::new(dir).refresh() {
        Err(e @ WatchError::NotTrainerOutput { .. }) => Some(e.to_string()),
        _ => None,
    }
}

fn print_once(s: &RunSnapshot, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("{}", s.progress_line());
    for eval in &s.eval {
        println!(
            "  eval at step {} (epoch {:.2}): {}",
            eval.step,
            eval.epoch,
            metrics_text(eval)
        );
    }
    for c in &s.checkpoints {
        let gone = if c.gone { "  (gone)" } else { "" };
        println!(
            "  checkpoint step {} epoch {:.2}: {}{gone}",
            c.step,
            c.epoch,
            c.path.display()
        );
    }
    for p in &s.problems {
        eprintln!("warning: {p}");
    }
    Ok(())
}

fn metrics_text(eval: &bertscope::watch::EvalPoint) -> String {
    eval.metrics
        .iter()
        .filter_map(|(k, v)| Some(format!("{} {:.4}", k.strip_prefix("eval_")?, v.as_f64()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What has been printed already, so that each change prints only what is new.
#[derive(Default)]
struct Shown {
    step: Option<usize>,
    evals: usize,
    gone: Vec<PathBuf>,
    problems: Vec<String>,
    error: Option<String>,
}

impl Shown {
    fn show(&mut self, update: &Update, dir: &Path, json: bool) {
        let s = match update {
            Err(e) => {
                let message = match e {
                    WatchError::NotFound(_) => format!("waiting for {} to appear", dir.display()),
                    other => format!("waiting: {other}"),
                };
                if self.error.as_ref() != Some(&message) {
                    eprintln!("{message}");
                    self.error = Some(message);
                }
                return;
            }
            Ok(s) => s,
        };
        self.error = None;
        if json {
            if let Ok(line) = serde_json::to_string(s) {
                println!("{line}");
            }
            return;
        }
        for point in s
            .log
            .iter()
            .filter(|p| self.step.is_none_or(|last| p.step > last))
        {
            println!("{}", s.progress_line_at(Some(point)));
        }
        if s.log.is_empty() && self.step.is_none() {
            println!("{}", s.progress_line());
        }
        self.step = s.log.last().map(|p| p.step).or(self.step);
        for eval in s.eval.iter().skip(self.evals) {
            println!(
                "  eval at step {} (epoch {:.2}): {}",
                eval.step,
                eval.epoch,
                metrics_text(eval)
            );
        }
        self.evals = s.eval.len();
        for c in s.checkpoints.iter().filter(|c| c.gone) {
            if !self.gone.contains(&c.path) {
                eprintln!(
                    "checkpoint {} is gone (deleted after it was written)",
                    c.path.display()
                );
                self.gone.push(c.path.clone());
            }
        }
        for p in &s.problems {
            let key = if p.starts_with("no new log entry") {
                format!(
                    "idle {}",
                    s.idle_s
                        .map_or(String::new(), |i| human_duration(i - i % 60.0))
                )
            } else {
                p.clone()
            };
            if !self.problems.contains(&key) {
                eprintln!("warning: {p}");
                self.problems.push(key);
            }
        }
    }
}
