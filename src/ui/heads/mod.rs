//! The Heads view: what each head does over a whole data file. A run on the
//! model worker (progress, Cancel) of the coreference probe over a marked set
//! (a bundled one or a file) or of one of the seven head statistics over a
//! data file; the layers × heads map for the base model and, when a tuned
//! model is open, beside it; a head clicked lists the rows with its choice
//! (right or wrong) or its values, and a row clicked opens in the head view.

mod view;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::model::precision::Precision;
use crate::ui::support::job::Job;
use crate::ui::training::form::TrainForm;
use crate::ui::worker::{
    CancelFlag, HeadsAnswer, HeadsRequest, HeadsSource, Request, WorkerHandle,
};

pub use view::show;

/// The bundled coreference sets, written for the project.
const COREF_EN: &str = include_str!("../../../assets/data/coref-en.tsv");
const COREF_ZH: &str = include_str!("../../../assets/data/coref-zh.tsv");

/// Where the rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataChoice {
    /// The bundled English coreference set (100 Winograd-style rows).
    CorefEn,
    /// The bundled Chinese set (40 rows in the tutorial's style).
    CorefZh,
    /// The training view's data file.
    Training,
    /// A file typed or chosen here.
    Other,
}

impl DataChoice {
    pub const ALL: [DataChoice; 4] = [
        DataChoice::CorefEn,
        DataChoice::CorefZh,
        DataChoice::Training,
        DataChoice::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DataChoice::CorefEn => "English coreference set (bundled)",
            DataChoice::CorefZh => "Chinese coreference set (bundled)",
            DataChoice::Training => "the training view's data file",
            DataChoice::Other => "another file",
        }
    }
}

/// What the map shows: coreference accuracy, or one of the statistics
/// (`dataset::stats::NAMES` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Coreference,
    Statistic(usize),
}

impl Measure {
    pub const ALL: [Measure; 8] = [
        Measure::Coreference,
        Measure::Statistic(0),
        Measure::Statistic(1),
        Measure::Statistic(2),
        Measure::Statistic(3),
        Measure::Statistic(4),
        Measure::Statistic(5),
        Measure::Statistic(6),
    ];

    pub fn label(self) -> &'static str {
        match self {
            Measure::Coreference => "coreference accuracy",
            Measure::Statistic(0) => "attention to [CLS]",
            Measure::Statistic(1) => "attention to [SEP]",
            Measure::Statistic(2) => "attention to punctuation",
            Measure::Statistic(3) => "attention to itself",
            Measure::Statistic(4) => "attention to the previous token",
            Measure::Statistic(5) => "attention to the next token",
            Measure::Statistic(_) => "entropy (bits)",
        }
    }
}

/// A run on the worker.
struct Running {
    cancel: CancelFlag,
    /// On the tuned model, rows done, of all.
    progress: Option<(bool, usize, usize)>,
}

pub struct HeadsState {
    pub data: DataChoice,
    pub path: String,
    pub measure: Measure,
    pub max_rows: usize,
    /// The products the run takes (fp32 by default; bf16 where the CPU has it).
    pub precision: Precision,
    running: Option<Running>,
    /// The last run: what it measured, over which file, and its answer.
    pub result: Option<(Measure, String, Result<HeadsAnswer, String>)>,
    /// The head whose rows are listed.
    pub selected: Option<(usize, usize)>,
    /// Run as soon as the view is shown with a model (`gui --view heads`).
    pub compute_on_open: bool,
    dialog: Option<Job<Option<PathBuf>>>,
}

impl Default for HeadsState {
    fn default() -> Self {
        HeadsState {
            data: DataChoice::CorefEn,
            path: String::new(),
            measure: Measure::Coreference,
            max_rows: 1000,
            precision: Precision::Fp32,
            running: None,
            result: None,
            selected: None,
            compute_on_open: false,
            dialog: None,
        }
    }
}

/// What the view asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadsAction {
    Run,
    Cancel,
    Browse,
    /// A head clicked on a map: list its rows, select it in the other views.
    SelectHead {
        layer: usize,
        head: usize,
    },
    /// A row clicked: show it in the head view on the selected head.
    OpenRow {
        text_a: String,
        text_b: Option<String>,
    },
    /// Show the selected head in the head view, on the current input.
    OpenHead,
}

impl HeadsState {
    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// Nothing to wait for: no run going on or about to start.
    pub fn settled(&self) -> bool {
        self.running.is_none() && !self.compute_on_open
    }

    pub fn progress(&mut self, tuned: bool, done: usize, total: usize) {
        if let Some(r) = &mut self.running {
            r.progress = Some((tuned, done, total));
        }
    }

    pub fn finished(&mut self, source: String, result: Result<HeadsAnswer, String>) {
        self.running = None;
        self.result = Some((self.measure, source, result));
    }

    /// The model (or the tuned one) changed: the numbers are stale.
    pub fn models_changed(&mut self) {
        if let Some(r) = &self.running {
            r.cancel.0.store(true, Ordering::Relaxed);
        }
        self.running = None;
        self.result = None;
    }

    pub fn poll_dialog(&mut self) {
        let chosen = self.dialog.as_ref().and_then(Job::poll);
        if let Some(choice) = chosen {
            self.dialog = None;
            match choice {
                Ok(Some(path)) => {
                    self.path = path.display().to_string();
                    self.data = DataChoice::Other;
                }
                Ok(None) => {}
                Err(e) => self.result = Some((self.measure, String::new(), Err(e))),
            }
        }
    }

    /// Start a run, cancel it, or open the file dialog.
    pub fn act(
        &mut self,
        action: &HeadsAction,
        worker: &mut WorkerHandle,
        train: &TrainForm,
        ctx: &egui::Context,
    ) {
        match action {
            HeadsAction::Run => match self.request(train) {
                Ok(req) => {
                    let cancel = req.cancel.clone();
                    worker.send(Request::Heads(req));
                    self.running = Some(Running {
                        cancel,
                        progress: None,
                    });
                    self.result = None;
                }
                Err(why) => self.result = Some((self.measure, String::new(), Err(why))),
            },
            HeadsAction::Cancel => {
                if let Some(r) = &self.running {
                    r.cancel.0.store(true, Ordering::Relaxed);
                }
            }
            HeadsAction::Browse if self.dialog.is_none() => {
                self.dialog = Some(crate::ui::support::job::pick_data_file(
                    "Choose a data file",
                    ctx,
                ));
            }
            HeadsAction::SelectHead { layer, head } => self.selected = Some((*layer, *head)),
            HeadsAction::Browse | HeadsAction::OpenRow { .. } | HeadsAction::OpenHead => {}
        }
    }

    fn request(&self, train: &TrainForm) -> Result<HeadsRequest, String> {
        let bundled = |name: &'static str, text: &'static str| {
            match self.measure {
            Measure::Coreference => Ok(HeadsSource::Bundled { name, text }),
            Measure::Statistic(_) => Err(
                "the bundled sets are marked for coreference; choose a data file for head statistics"
                    .to_string(),
            ),
        }
        };
        let path = match self.data {
            DataChoice::CorefEn => return self.with_limits(bundled("coref-en.tsv", COREF_EN)?),
            DataChoice::CorefZh => return self.with_limits(bundled("coref-zh.tsv", COREF_ZH)?),
            DataChoice::Training if train.data_path.trim().is_empty() => {
                return Err("load a data file in the training view first".into())
            }
            DataChoice::Training => PathBuf::from(train.data_path.trim()),
            DataChoice::Other if self.path.trim().is_empty() => {
                return Err("type or choose a data file first".into())
            }
            DataChoice::Other => PathBuf::from(self.path.trim()),
        };
        let source = match self.measure {
            Measure::Coreference => HeadsSource::Coreference { path },
            Measure::Statistic(_) => HeadsSource::Statistics {
                columns: if self.data == DataChoice::Training {
                    train.columns()
                } else {
                    crate::data::Columns::default()
                },
                path,
            },
        };
        self.with_limits(source)
    }

    fn with_limits(&self, source: HeadsSource) -> Result<HeadsRequest, String> {
        Ok(HeadsRequest {
            source,
            limits: crate::dataset::PassLimits {
                max_rows: Some(self.max_rows.max(1)),
                max_length: crate::dataset::DEFAULT_MAX_LENGTH,
            },
            precision: self.precision,
            cancel: CancelFlag::default(),
        })
    }
}
