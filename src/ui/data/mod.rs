//! The Data view: the loaded data file's rows as points (PCA of pooled
//! hidden states), coloured by gold label, predicted label or right/wrong;
//! the base → kept epochs → tuned stages animated on one set of axes; a box
//! selection listing its rows; and *Find similar in data*: the tokens of
//! the data used most like one token of the input, from an index built in
//! the background (base and tuned side by side).
//!
//! - `jobs.rs`: the engine work, off the UI thread;
//! - `scatter.rs`: drawing and picking the points;
//! - `view.rs`: the controls, the scatter and the row list;
//! - `find.rs`: the *Find similar in data* panel.

pub mod find;
pub mod jobs;
pub mod scatter;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;

use crate::dataset::pooled::Pool;
use crate::model::precision::Precision;
use crate::ui::support::job::Job;
use crate::ui::training::form::TrainForm;
use jobs::{Cache, FindQuery, Found, Indexes, Projected, Running, Source};

pub use view::show;

/// Where the rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataChoice {
    /// The training view's data file.
    Training,
    /// A file typed or chosen here.
    Other,
}

/// How the points are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourBy {
    Gold,
    Predicted,
    RightWrong,
}

impl ColourBy {
    pub const ALL: [ColourBy; 3] = [ColourBy::Gold, ColourBy::Predicted, ColourBy::RightWrong];

    pub fn label(self) -> &'static str {
        match self {
            ColourBy::Gold => "gold label",
            ColourBy::Predicted => "predicted label",
            ColourBy::RightWrong => "right / wrong",
        }
    }
}

/// The models a job runs: the base model's folder and the tuned run's.
#[derive(Debug, Clone, PartialEq)]
pub struct Models {
    pub base: PathBuf,
    pub tuned: Option<PathBuf>,
}

/// The *Find similar in data* panel.
pub struct FindState {
    pub query: FindQuery,
    /// The query token's text, for the heading.
    pub token: String,
    pub indexes: Option<(Models, Source, Indexes)>,
    /// What the build under way is for.
    pending: Option<(Models, Source)>,
    building: Option<Running<Indexes>>,
    searching: Option<Running<Found>>,
    pub found: Option<Result<Found, String>>,
    /// Layers the index stores (all), for the layer switch.
    pub layers: usize,
}

pub struct DataState {
    pub data: DataChoice,
    pub path: String,
    pub layer: usize,
    pub pool: Pool,
    pub max_rows: usize,
    /// The products the projection and the indexes take.
    pub precision: Precision,
    pub colour: ColourBy,
    /// The stage shown: 0 the base … last the tuned; fractions blend two.
    pub stage: f32,
    pub playing: bool,
    running: Option<Running<Projected>>,
    pub result: Option<Result<Projected, String>>,
    /// Rows inside the last box drawn on the scatter.
    pub selected: Vec<usize>,
    pub find: Option<FindState>,
    /// Run as soon as the view is shown with a model (`gui --view data`).
    pub compute_on_open: bool,
    cache: Arc<Cache>,
    dialog: Option<Job<Option<PathBuf>>>,
    /// Where indexes are kept (beside the runs).
    pub indexes_dir: PathBuf,
    /// Drawn for a screenshot: no pointer, nothing hovered.
    pub still: bool,
    /// The stage shown when a projection arrives (`None`: the last).
    pub start_stage: Option<f32>,
}

impl DataState {
    pub fn new(indexes_dir: PathBuf) -> Self {
        DataState {
            data: DataChoice::Training,
            path: String::new(),
            layer: 6,
            pool: Pool::Cls,
            max_rows: 2000,
            precision: Precision::Fp32,
            colour: ColourBy::Gold,
            stage: 0.0,
            playing: false,
            running: None,
            result: None,
            selected: Vec::new(),
            find: None,
            compute_on_open: false,
            cache: Arc::new(Cache::default()),
            dialog: None,
            indexes_dir,
            still: false,
            start_stage: None,
        }
    }

    /// Nothing under way or about to start.
    pub fn settled(&self) -> bool {
        self.running.is_none()
            && !self.compute_on_open
            && self
                .find
                .as_ref()
                .is_none_or(|f| f.building.is_none() && f.searching.is_none())
    }

    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// The rows chosen: the training view's file or the one typed here.
    pub fn source(&self, train: &TrainForm) -> Result<Source, String> {
        let (path, columns) = match self.data {
            DataChoice::Training if train.data_path.trim().is_empty() => {
                return Err(
                    "load a data file in the training view first, or choose another file".into(),
                )
            }
            DataChoice::Training => (PathBuf::from(train.data_path.trim()), train.columns()),
            DataChoice::Other if self.path.trim().is_empty() => {
                return Err("type or choose a data file first".into())
            }
            DataChoice::Other => (
                PathBuf::from(self.path.trim()),
                crate::data::Columns::default(),
            ),
        };
        Ok(Source {
            path,
            columns,
            max_rows: self.max_rows.max(1),
            precision: self.precision,
        })
    }

    /// The model or the tuned run changed: what was computed is stale.
    /// A projection shown or under way runs again with the new models.
    pub fn models_changed(&mut self) {
        if let Some(r) = &self.running {
            r.cancel();
        }
        self.compute_on_open |= self.running.is_some() || self.result.is_some();
        self.running = None;
        self.result = None;
        self.selected.clear();
        self.stage = 0.0;
        self.playing = false;
        if let Some(find) = &mut self.find {
            find.indexes = None;
            find.found = None;
        }
    }

    /// Start the projection; `layers`: the model's (the layer is kept within).
    pub fn run(&mut self, models: &Models, layers: usize, train: &TrainForm, ctx: &egui::Context) {
        self.layer = self.layer.min(layers);
        let source = match self.source(train) {
            Ok(s) => s,
            Err(why) => {
                self.result = Some(Err(why));
                return;
            }
        };
        if let Some(r) = &self.running {
            r.cancel();
        }
        let (cache, models, layer, pool) =
            (self.cache.clone(), models.clone(), self.layer, self.pool);
        self.running = Some(Running::spawn(
            "projection",
            ctx,
            move |progress, cancel| {
                jobs::project(
                    &cache,
                    &models.base,
                    models.tuned.as_deref(),
                    &source,
                    (layer, pool),
                    progress,
                    cancel,
                )
            },
        ));
        self.result = None;
        self.selected.clear();
        self.playing = false;
    }

    pub fn cancel(&mut self) {
        if let Some(r) = &self.running {
            r.cancel();
        }
        if let Some(f) = &mut self.find {
            f.cancel_build();
        }
    }

    /// Collect finished jobs; start the search once its indexes exist.
    pub fn poll(&mut self, ctx: &egui::Context) {
        if let Some(done) = self.running.as_ref().and_then(Running::poll) {
            self.running = None;
            if let Ok(p) = &done {
                let last = (p.projection.checkpoints.as_ref().map_or(1, Vec::len) - 1) as f32;
                self.stage = self.start_stage.map_or(last, |s| s.clamp(0.0, last));
            }
            self.result = Some(done);
        }
        if let Some(Ok(path)) = self.dialog.as_ref().and_then(Job::poll) {
            self.dialog = None;
            if let Some(path) = path {
                self.path = path.display().to_string();
                self.data = DataChoice::Other;
            }
        }
        let cache = self.cache.clone();
        if let Some(find) = &mut self.find {
            find.poll(&cache, ctx);
        }
    }

    /// Show a projection made elsewhere (an export draws the one on screen).
    pub fn show_projected(&mut self, projected: Projected, stage: f32, colour: ColourBy) {
        self.layer = projected.projection.layer;
        self.stage = stage;
        self.colour = colour;
        self.result = Some(Ok(projected));
    }

    /// Search the same token at another layer.
    pub fn find_layer(&mut self, layer: usize, ctx: &egui::Context) {
        let cache = self.cache.clone();
        if let Some(find) = &mut self.find {
            find.set_layer(layer, &cache, ctx);
        }
    }

    /// Open the file dialog.
    pub fn browse(&mut self, ctx: &egui::Context) {
        if self.dialog.is_some() {
            return;
        }
        self.dialog = Some(crate::ui::support::job::pick_data_file(
            "Choose a data file",
            ctx,
        ));
    }

    /// *Find similar in data* for token `token` of the input: build the
    /// indexes when needed, then search.
    #[allow(clippy::too_many_arguments)]
    pub fn find_similar(
        &mut self,
        query: FindQuery,
        token: String,
        layers: usize,
        models: &Models,
        train: &TrainForm,
        budget: u64,
        ctx: &egui::Context,
    ) {
        let source = self.source(train);
        let kept = self.find.take().and_then(|f| f.indexes);
        let mut find = FindState {
            query,
            token,
            indexes: None,
            pending: None,
            building: None,
            searching: None,
            found: None,
            layers,
        };
        let source = match source {
            Ok(s) => s,
            Err(why) => {
                find.found = Some(Err(why));
                self.find = Some(find);
                return;
            }
        };
        match kept {
            Some((m, s, i)) if &m == models && s == source => {
                find.indexes = Some((m, s, i));
                find.search(&self.cache, ctx);
            }
            _ => find.build(&self.cache, models, source, &self.indexes_dir, budget, ctx),
        }
        self.find = Some(find);
    }
}

impl FindState {
    fn build(
        &mut self,
        cache: &Arc<Cache>,
        models: &Models,
        source: Source,
        root: &std::path::Path,
        budget: u64,
        ctx: &egui::Context,
    ) {
        let (cache, models, root) = (cache.clone(), models.clone(), root.to_path_buf());
        let kept = (models.clone(), source.clone());
        self.building = Some(Running::spawn(
            "index build",
            ctx,
            move |progress, cancel| {
                jobs::build_indexes(
                    &cache,
                    (&models.base, models.tuned.as_deref()),
                    &source,
                    &root,
                    budget,
                    progress,
                    cancel,
                )
            },
        ));
        self.pending = Some(kept);
    }
}
