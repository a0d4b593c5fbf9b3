//! The data's embeddings in two dimensions: each row pooled at one layer,
//! laid out by PCA; with a fine-tuned run, the base, every kept epoch and
//! the tuned model each laid out by its own PCA and then turned (rotation or
//! reflection only) onto the tuned model's axes, so that stepping through
//! them shows the data move.
//!
//! - `pca.rs`: the principal components;
//! - `procrustes.rs`: the 2-D orthogonal alignment.

pub mod pca;
pub mod procrustes;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use serde::Serialize;

use crate::data::Dataset;
use crate::dataset::pooled::{pooled, Pool};
use crate::engine::LoadedModel;
use crate::error::{BertError, Op, Result};
use crate::write_guard::EPOCHS_DIR;

/// What to project: a layer, pooled, of which rows.
pub use crate::dataset::pooled::Pooling as ProjectOptions;

/// One row in the plane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub row: usize,
    /// The gold label, when the data has one.
    pub label: Option<String>,
    /// What the model's classifier says, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<String>,
    pub x: f64,
    pub y: f64,
}

/// One model's layout: the base, a kept epoch or the tuned model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// 0 for the base; the epoch a checkpoint was saved after; for the
    /// tuned model, the epoch it was saved from when its report says so.
    pub epoch: Option<usize>,
    /// Whether this is the tuned model itself (the last stage).
    pub tuned: bool,
    pub points: Vec<Point>,
    pub explained_variance_ratio: [f64; 2],
}

/// The projection of a data file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub layer: usize,
    pub pool: Pool,
    pub method: &'static str,
    /// The tuned model's layout when there is one, else the base's.
    pub points: Vec<Point>,
    pub explained_variance_ratio: [f64; 2],
    /// Base, kept epochs, tuned: each aligned to the tuned model's axes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<Vec<Stage>>,
}

/// The checkpoints of a fine-tuned run after the base: every kept
/// `epochs/epoch-N` (N ≥ 1, ascending) and the run itself last.
pub fn run_stages(tuned: &Path) -> Result<Vec<(Option<usize>, PathBuf, bool)>> {
    let mut stages: Vec<(Option<usize>, PathBuf, bool)> = Vec::new();
    let epochs = tuned.join(EPOCHS_DIR);
    if epochs.is_dir() {
        let listing = epochs
            .read_dir()
            .map_err(|e| BertError::io(Op::List, &epochs, &e))?;
        let mut kept: Vec<(usize, PathBuf)> = listing
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let n = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
                let path = entry.path();
                (n > 0 && path.join("config.json").is_file()).then_some((n, path))
            })
            .collect();
        kept.sort();
        stages.extend(kept.into_iter().map(|(n, p)| (Some(n), p, false)));
    }
    let epoch = crate::train::Report::load(tuned)?
        .and_then(|r| r.best_epoch.or_else(|| r.epochs.last().map(|e| e.epoch)));
    stages.push((epoch, tuned.to_path_buf(), true));
    Ok(stages)
}

/// Lay out `data` with `base` (and, given a tuned run's folder, with each
/// of its stages); `progress(done, total)` in rows over all stages.
pub fn project(
    base: &LoadedModel,
    tuned: Option<&Path>,
    data: &Dataset,
    options: ProjectOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Projection> {
    let stages = match tuned {
        Some(dir) => run_stages(dir)?,
        None => Vec::new(),
    };
    let rows = options.limits.rows(data).len();
    let total = rows * (1 + stages.len());
    let mut laid = Vec::with_capacity(1 + stages.len());
    laid.push(stage(
        base,
        data,
        options,
        (Some(0), false),
        0,
        total,
        progress,
        cancel,
    )?);
    for (i, (epoch, dir, is_tuned)) in stages.iter().enumerate() {
        let name = dir.display().to_string();
        let model = LoadedModel::load_dir(&name, dir, device)?;
        let done = rows * (i + 1);
        laid.push(stage(
            &model,
            data,
            options,
            (*epoch, *is_tuned),
            done,
            total,
            progress,
            cancel,
        )?);
    }
    let Some(last) = laid.last().cloned() else {
        return Err(BertError::Input("nothing to project".into()));
    };
    let checkpoints = tuned.map(|_| {
        let target: Vec<[f64; 2]> = last.points.iter().map(|p| [p.x, p.y]).collect();
        laid.into_iter()
            .map(|mut s| {
                let own: Vec<[f64; 2]> = s.points.iter().map(|p| [p.x, p.y]).collect();
                for (p, a) in s.points.iter_mut().zip(procrustes::align(&own, &target)) {
                    (p.x, p.y) = (a[0], a[1]);
                }
                s
            })
            .collect()
    });
    Ok(Projection {
        layer: options.layer,
        pool: options.pool,
        method: "pca",
        points: last.points,
        explained_variance_ratio: last.explained_variance_ratio,
        checkpoints,
    })
}

/// One model's own PCA layout of the rows.
#[allow(clippy::too_many_arguments)]
fn stage(
    model: &LoadedModel,
    data: &Dataset,
    options: ProjectOptions,
    (epoch, tuned): (Option<usize>, bool),
    done: usize,
    total: usize,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Stage> {
    let mut local = |d: usize, _: usize| progress(done + d, total);
    let pooled = pooled(model, data, options, true, &mut local, cancel)?;
    let layout = pca::pca(&pooled.vectors, pooled.rows, pooled.hidden);
    let examples = options.limits.rows(data);
    let points = layout
        .points
        .iter()
        .enumerate()
        .map(|(row, p)| Point {
            row,
            label: examples[row].label.clone(),
            predicted: pooled.predicted.as_ref().map(|v| v[row].clone()),
            x: p[0],
            y: p[1],
        })
        .collect();
    Ok(Stage {
        epoch,
        tuned,
        points,
        explained_variance_ratio: layout.explained_variance_ratio,
    })
}
