//! The Data view's work, each on a thread of its own so that the model
//! worker stays free for the other views: the projection (base, kept
//! epochs, tuned), building or resuming the indexes, and searching them.
//! Models and opened indexes are loaded once and shared between jobs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use candle_core::Device;

use crate::data::{self, Columns, Dataset, ReadOptions};
use crate::dataset::pooled::Pool;
use crate::dataset::{PassLimits, DEFAULT_MAX_LENGTH};
use crate::engine::LoadedModel;
use crate::index::{self, store, BuildOptions, DataSource, Index, LayerVectors, SearchResult};
use crate::model::precision::{self, Precision};
use crate::project::{self, ProjectOptions, Projection};
use crate::ui::support::job::Job;
use crate::write_guard::{self, Protected};

/// Rows done of all, shared with the UI.
#[derive(Default)]
pub struct Progress {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Progress {
    fn set(&self, done: usize, total: usize) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// `(done, total)` once known.
    pub fn get(&self) -> Option<(usize, usize)> {
        let total = self.total.load(Ordering::Relaxed);
        (total > 0).then(|| (self.done.load(Ordering::Relaxed), total))
    }
}

/// A job under way: its answer to come, its progress and its cancel.
pub struct Running<T> {
    job: Job<Result<T, String>>,
    pub progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
}

impl<T: Send + 'static> Running<T> {
    pub fn spawn(
        what: &str,
        ctx: &egui::Context,
        work: impl FnOnce(&dyn Fn(usize, usize), &AtomicBool) -> Result<T, String> + Send + 'static,
    ) -> Self {
        let progress = Arc::new(Progress::default());
        let cancel = Arc::new(AtomicBool::new(false));
        let (p, c, repaint) = (progress.clone(), cancel.clone(), ctx.clone());
        let done = ctx.clone();
        let job = Job::spawn(
            what,
            move || {
                let report = |d: usize, t: usize| {
                    p.set(d, t);
                    repaint.request_repaint();
                };
                work(&report, &c)
            },
            move || done.request_repaint(),
        );
        Running {
            job,
            progress,
            cancel,
        }
    }

    /// The answer once the job is done.
    pub fn poll(&self) -> Option<Result<T, String>> {
        self.job.poll().map(|r| r.and_then(|inner| inner))
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// Models and indexes loaded by the view's jobs, each once (a model again
/// when its folder's files changed, as when a run is trained again in place).
#[derive(Default)]
pub struct Cache {
    models: Mutex<Vec<CachedModel>>,
    indexes: Mutex<Vec<(PathBuf, Arc<OpenIndex>)>>,
}

/// An index, its model, and the layers read so far.
pub struct OpenIndex {
    pub index: Index,
    model: Arc<LoadedModel>,
    layers: Mutex<Vec<(usize, Arc<LayerVectors>)>>,
}

/// A loaded model, its folder and when that folder's newest file was written.
type CachedModel = (PathBuf, Option<SystemTime>, Arc<LoadedModel>);

impl Cache {
    fn model(&self, dir: &Path) -> Result<Arc<LoadedModel>, String> {
        let mut models = self
            .models
            .lock()
            .map_err(|_| "a model load crashed".to_string())?;
        let stamp = newest_file(dir);
        if let Some((_, _, m)) = models.iter().find(|(d, s, _)| d == dir && *s == stamp) {
            return Ok(m.clone());
        }
        models.retain(|(d, ..)| d != dir);
        let name = dir.display().to_string();
        let model = LoadedModel::load_dir(&name, dir, &Device::Cpu).map_err(|e| e.to_string())?;
        let model = Arc::new(model);
        models.push((dir.to_path_buf(), stamp, model.clone()));
        Ok(model)
    }

    fn index(&self, dir: &Path, model: Arc<LoadedModel>) -> Result<Arc<OpenIndex>, String> {
        let mut indexes = self
            .indexes
            .lock()
            .map_err(|_| "an index load crashed".to_string())?;
        if let Some((_, i)) = indexes.iter().find(|(d, _)| d == dir) {
            return Ok(i.clone());
        }
        let index = Index::open(dir).map_err(|e| e.to_string())?;
        let open = Arc::new(OpenIndex {
            index,
            model,
            layers: Mutex::new(Vec::new()),
        });
        indexes.push((dir.to_path_buf(), open.clone()));
        Ok(open)
    }

    /// Forget the indexes (they were rebuilt or pruned).
    pub fn forget_indexes(&self) {
        if let Ok(mut indexes) = self.indexes.lock() {
            indexes.clear();
        }
    }
}

/// When the newest file directly in `dir` was last written.
fn newest_file(dir: &Path) -> Option<SystemTime> {
    dir.read_dir()
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .filter_map(|m| m.modified().ok())
        .max()
}

impl OpenIndex {
    fn layer(&self, layer: usize) -> Result<Arc<LayerVectors>, String> {
        let mut layers = self
            .layers
            .lock()
            .map_err(|_| "a layer load crashed".to_string())?;
        if let Some((_, v)) = layers.iter().find(|(l, _)| *l == layer) {
            return Ok(v.clone());
        }
        let vectors = Arc::new(self.index.load_layer(layer).map_err(|e| e.to_string())?);
        layers.push((layer, vectors.clone()));
        Ok(vectors)
    }
}

/// The rows the view works on.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub path: PathBuf,
    pub columns: Columns,
    pub max_rows: usize,
    /// The products the passes over them take.
    pub precision: Precision,
}

impl Source {
    fn read(&self) -> Result<Dataset, String> {
        let result = if self.path.extension().is_some_and(|e| e == "txt") {
            data::read_lines(&self.path)
        } else {
            let options = ReadOptions {
                columns: self.columns.clone(),
                skip_bad_rows: true,
                ..Default::default()
            };
            data::read(&self.path, &options)
        };
        result.map_err(|e| e.to_string())
    }

    fn limits(&self) -> PassLimits {
        PassLimits {
            max_rows: Some(self.max_rows.max(1)),
            max_length: DEFAULT_MAX_LENGTH,
        }
    }
}

/// The projection and the rows' texts and labels.
#[derive(Debug, Clone)]
pub struct Projected {
    pub projection: Projection,
    pub rows: Vec<(String, Option<String>)>,
    /// The products the hidden states were computed with.
    pub precision: Precision,
}

/// Lay out the rows with the base model (and a tuned run's stages).
pub fn project(
    cache: &Cache,
    base: &Path,
    tuned: Option<&Path>,
    source: &Source,
    (layer, pool): (usize, Pool),
    progress: &dyn Fn(usize, usize),
    cancel: &AtomicBool,
) -> Result<Projected, String> {
    let data = source.read()?;
    let model = cache.model(base)?;
    source
        .precision
        .check(model.model.device())
        .map_err(|e| e.to_string())?;
    let options = ProjectOptions {
        layer,
        pool,
        limits: source.limits(),
    };
    let mut report = |d: usize, t: usize| progress(d, t);
    let projection = precision::scoped(source.precision, || {
        project::project(
            &model,
            tuned,
            &data,
            options,
            &Device::Cpu,
            &mut report,
            cancel,
        )
    })
    .map_err(|e| e.to_string())?;
    let rows = source
        .limits()
        .rows(&data)
        .iter()
        .map(|e| (e.text_a.clone(), e.text_b.clone()))
        .collect();
    Ok(Projected {
        projection,
        rows,
        precision: source.precision,
    })
}

/// The indexes a search reads: the base model's and the tuned one's.
#[derive(Debug, Clone, PartialEq)]
pub struct Indexes {
    pub base: PathBuf,
    pub tuned: Option<PathBuf>,
}

/// Build or resume the index of the rows for the base model (and the tuned
/// one) under `root`, then prune `root` to `budget` bytes.
pub fn build_indexes(
    cache: &Cache,
    models: (&Path, Option<&Path>),
    source: &Source,
    root: &Path,
    budget: u64,
    progress: &dyn Fn(usize, usize),
    cancel: &AtomicBool,
) -> Result<Indexes, String> {
    let data = source.read()?;
    let limits = source.limits();
    let rows = limits.rows(&data).len();
    let mut folders = Vec::new();
    // The rows' source, the same for every model.
    let data_source = DataSource {
        path: write_guard::absolute(&source.path),
        digest: index::fingerprint::of_file(&source.path).map_err(|e| e.to_string())?,
        text_a: source.columns.text_a.clone(),
        text_b: data.has_text_b.then(|| {
            source
                .columns
                .text_b
                .clone()
                .unwrap_or_else(|| "text_b".into())
        }),
        label: data
            .examples
            .iter()
            .any(|e| e.label.is_some())
            .then(|| source.columns.label.clone()),
    };
    let wanted: Vec<&Path> = std::iter::once(models.0).chain(models.1).collect();
    for (i, dir) in wanted.iter().enumerate() {
        let model = cache.model(dir)?;
        let fingerprint = index::fingerprint::of_model(dir).map_err(|e| e.to_string())?;
        let folder = store::folder_for(
            root,
            &model.name,
            &fingerprint,
            &data_source,
            (limits.max_rows, limits.max_length),
            source.precision,
        );
        let done = index::Manifest::read(&folder).is_ok_and(|m| m.complete);
        if !done {
            check_space(root, &data, rows, &model)?;
            std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
            let mut protected = Protected::new();
            protected.add("the data file", &source.path);
            protected.add("the model", dir);
            let options = BuildOptions {
                source: data_source.clone(),
                layers: None,
                limits,
                overwrite: false,
                chunk_rows: None,
                model_fingerprint: Some(fingerprint.clone()),
                precision: source.precision,
            };
            let mut report = |d: usize, _: usize| progress(i * rows + d, wanted.len() * rows);
            index::build(
                &model,
                &data,
                &folder,
                &protected,
                &options,
                &mut report,
                cancel,
            )
            .map_err(|e| e.to_string())?;
        }
        folders.push(folder);
    }
    store::prune(root, budget, &folders).map_err(|e| e.to_string())?;
    cache.forget_indexes();
    let mut folders = folders.into_iter();
    Ok(Indexes {
        base: folders.next().ok_or("no index was built")?,
        tuned: folders.next(),
    })
}

/// Refuse a build that would not fit: about 1 token a 3 bytes of text, at
/// 2 bytes × hidden × (layers + 1) a token.
fn check_space(
    root: &Path,
    data: &Dataset,
    rows: usize,
    model: &LoadedModel,
) -> Result<(), String> {
    let text: usize = data
        .examples
        .iter()
        .take(rows)
        .map(|e| e.text_a.len() + e.text_b.as_ref().map_or(0, String::len))
        .sum();
    let config = model.config();
    let need = (text / 3 + 2 * rows) as u64
        * (2 * config.hidden_size() * (config.num_layers() + 1)) as u64;
    let place = root.ancestors().find(|p| p.exists()).unwrap_or(root);
    match write_guard::free_space(place) {
        Some(free) if free < need => Err(format!(
            "{}: the index needs about {} MB and {} MB is free; lower Max rows or free some space",
            place.display(),
            need / 1_000_000,
            free / 1_000_000
        )),
        _ => Ok(()),
    }
}

/// What the view searches for: one token of the input at one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    pub text_a: String,
    pub text_b: Option<String>,
    pub token: usize,
    pub layer: usize,
}

/// The hits in the base index and, when built, the tuned one.
pub struct Found {
    pub base: SearchResult,
    pub tuned: Option<SearchResult>,
}

/// Hits a search lists.
pub const TOP: usize = 25;

/// Search the indexes for `query` (each with its own model).
pub fn search(
    cache: &Cache,
    models: (&Path, Option<&Path>),
    indexes: &Indexes,
    query: &FindQuery,
) -> Result<Found, String> {
    let one = |model_dir: &Path, dir: &Path| -> Result<SearchResult, String> {
        let model = cache.model(model_dir)?;
        let open = cache.index(dir, model)?;
        let q = open
            .index
            .query(
                &open.model,
                &query.text_a,
                query.text_b.as_deref(),
                query.token,
                query.layer,
            )
            .map_err(|e| e.to_string())?;
        let vectors = open.layer(query.layer)?;
        open.index
            .search(&vectors, &q, TOP, &open.model.tokenizer)
            .map_err(|e| e.to_string())
    };
    let base = one(models.0, &indexes.base)?;
    let tuned = match (models.1, &indexes.tuned) {
        (Some(m), Some(dir)) => Some(one(m, dir)?),
        _ => None,
    };
    Ok(Found { base, tuned })
}
