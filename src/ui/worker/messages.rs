//! What the UI and the model worker say to each other: requests, their
//! answers, the slots an answer fills, and the envelopes carrying their ids.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::compare::{BeforeAfter, Comparison, HeadChanges, Side};
use crate::data::Columns;
use crate::engine::Analysis;
use crate::explain::{Explanation, HeadImportance};
use crate::train::preview::DataPreview;
use crate::train::Report;

/// Numbers the requests of one handle, from 1; answers nobody asked for carry 0.
pub type RequestId = u64;

/// A request from the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Load {
        spec: String,
    },
    Analyze(AnalyzeRequest),
    /// Open a fine-tuned directory as the tuned model (`None`: forget it).
    LoadTuned {
        dir: Option<PathBuf>,
    },
    /// Show this epoch's checkpoint as the tuned model (`None`: the saved one).
    ShowEpoch {
        epoch: Option<usize>,
    },
    /// Read a data file for the training view (columns guessed when `None`).
    Preview {
        path: PathBuf,
        columns: Option<Columns>,
    },
    /// Average the head changes over the first `limit` rows of a data file.
    MeanChanges {
        path: PathBuf,
        columns: Columns,
        limit: usize,
    },
    /// Explain one input's prediction (the Explain view).
    Explain(ExplainKey),
    /// Head importance over the first rows of a labelled data file.
    HeadImportance(ImportanceRequest),
    /// Explain one input before and after fine-tuning (the compare view).
    CompareExplain(CompareKey),
    /// Head importance before and after fine-tuning over a data file.
    CompareImportance(ImportanceRequest),
    /// The Heads view: head statistics or the coreference probe over a file,
    /// on the base model (and the tuned one when one is open).
    Heads(HeadsRequest),
    /// Tests only: make the worker panic, or end its thread as if it had died.
    #[doc(hidden)]
    InjectFault(Fault),
}

/// What the Heads view runs over which file.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadsSource {
    /// The seven head statistics over a data file's rows.
    Statistics { path: PathBuf, columns: Columns },
    /// The coreference probe over marked rows (a `text` column, or a .txt).
    Coreference { path: PathBuf },
    /// The probe over a bundled set (`name`, its TSV `text`).
    Bundled {
        name: &'static str,
        text: &'static str,
    },
}

impl HeadsSource {
    /// What the rows are read from, as errors and the view name it.
    pub fn path(&self) -> &std::path::Path {
        match self {
            HeadsSource::Statistics { path, .. } | HeadsSource::Coreference { path } => path,
            HeadsSource::Bundled { name, .. } => std::path::Path::new(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeadsRequest {
    pub source: HeadsSource,
    pub limits: crate::dataset::PassLimits,
    /// The linear layers' products (bf16 only on a CPU with them).
    pub precision: crate::model::precision::Precision,
    pub cancel: CancelFlag,
}

/// One model's outcome in the Heads view.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadsOutcome {
    Statistics(crate::dataset::stats::HeadStats),
    Coreference(crate::dataset::coref::CorefResult),
}

/// The Heads view's answer: the base model's and, when one is open, the
/// tuned model's; the first rows' texts for the list.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadsAnswer {
    pub base: HeadsOutcome,
    pub tuned: Option<HeadsOutcome>,
    /// Sentence A and B of the rows listed (statistics; coreference rows
    /// carry their own sentences).
    pub rows: Vec<(String, Option<String>)>,
    /// Rows the file's reader or the probe left out, with why.
    pub skipped: usize,
    /// The products the numbers were computed with.
    pub precision: crate::model::precision::Precision,
}

/// A fault a test injects into the worker.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Panic,
    /// The thread ends without a word, as a thread killed by a bug would.
    Exit,
}

/// Which answer a request waits for: a newer request with the same slot makes
/// the answers to older ones stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Load,
    Analyze,
    /// Opening a tuned run, or showing one of its epochs.
    Tuned,
    Preview,
    MeanChanges,
    Explain,
    HeadImportance,
    CompareExplain,
    CompareImportance,
    Heads,
}

impl Request {
    /// The slot of its answer; `None`: no answer is awaited.
    pub fn slot(&self) -> Option<Slot> {
        match self {
            Request::Load { .. } => Some(Slot::Load),
            Request::Analyze(_) => Some(Slot::Analyze),
            Request::LoadTuned { .. } | Request::ShowEpoch { .. } => Some(Slot::Tuned),
            Request::Preview { .. } => Some(Slot::Preview),
            Request::MeanChanges { .. } => Some(Slot::MeanChanges),
            Request::Explain(_) => Some(Slot::Explain),
            Request::HeadImportance(_) => Some(Slot::HeadImportance),
            Request::CompareExplain(_) => Some(Slot::CompareExplain),
            Request::CompareImportance(_) => Some(Slot::CompareImportance),
            Request::Heads(_) => Some(Slot::Heads),
            Request::InjectFault(_) => None,
        }
    }

    /// The answer that says this request failed with `error` (where the UI
    /// shows that request's errors), if it has one.
    pub(super) fn failure(&self, error: String) -> Option<Response> {
        Some(match self {
            Request::Load { spec } => Response::LoadFailed {
                spec: spec.clone(),
                error,
            },
            Request::Analyze(_) => Response::AnalysisFailed { error },
            Request::LoadTuned { dir: Some(dir) } => Response::TunedFailed {
                dir: dir.clone(),
                error,
            },
            Request::Preview { path, .. } => Response::PreviewFailed {
                path: path.clone(),
                error,
            },
            Request::MeanChanges { path, limit, .. } => Response::MeanChanges {
                source: mean_source(path, *limit),
                changes: Err(error),
            },
            Request::Explain(key) => Response::Explained {
                key: key.clone(),
                result: Err(error),
            },
            Request::HeadImportance(req) => Response::HeadImportance {
                source: req.path.display().to_string(),
                result: Err(error),
            },
            Request::CompareExplain(key) => Response::CompareExplained {
                key: key.clone(),
                result: Err(error),
            },
            Request::CompareImportance(req) => Response::CompareImportance {
                source: req.path.display().to_string(),
                result: Err(error),
            },
            Request::Heads(req) => Response::Heads {
                source: req.source.path().display().to_string(),
                result: Err(error),
            },
            Request::LoadTuned { dir: None }
            | Request::ShowEpoch { .. }
            | Request::InjectFault(_) => return None,
        })
    }
}

pub(super) fn mean_source(path: &std::path::Path, limit: usize) -> String {
    format!("the first {limit} rows of {}", path.display())
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeRequest {
    pub text_a: String,
    pub text_b: Option<String>,
    pub masked: Vec<usize>,
    pub top_k: usize,
    /// Heads switched off; the head whose queries and keys to report.
    pub inspect: crate::Inspect,
}

/// What to explain: an input and a target (`None`: the prediction). The
/// Explain view caches answers by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExplainKey {
    pub text_a: String,
    pub text_b: Option<String>,
    pub target: Option<String>,
}

/// What the compare view explains: an input, and the tuned model it is
/// explained on (its directory and the epoch shown; `None`: the saved
/// checkpoint). The worker answers with the tuned model it actually used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompareKey {
    pub text_a: String,
    pub text_b: Option<String>,
    pub tuned: PathBuf,
    pub epoch: Option<usize>,
}

/// A flag the UI sets to stop a long request; equal when it is the same flag.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(pub Arc<AtomicBool>);

impl PartialEq for CancelFlag {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportanceRequest {
    pub path: PathBuf,
    pub columns: Columns,
    pub max_rows: usize,
    pub cancel: CancelFlag,
}

/// What the UI needs to know about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub spec: String,
    pub path: String,
    pub layers: usize,
    pub heads: usize,
    pub vocab_size: usize,
    pub has_mlm: bool,
    /// The classifier's labels (empty without a classification head).
    pub labels: Vec<String>,
    /// Per gallery example: the share of its words that become `[UNK]`.
    pub example_unknown: Vec<f32>,
}

/// A message from the worker.
#[derive(Debug, Clone)]
pub enum Response {
    Loaded(ModelInfo),
    LoadFailed {
        spec: String,
        error: String,
    },
    Analysis {
        analysis: Box<Analysis>,
        /// The tuned model on the same input, when one is loaded.
        comparison: Option<Box<Comparison>>,
    },
    AnalysisFailed {
        error: String,
    },
    /// Models found on this machine that have a masked-LM head.
    MlmModels(Vec<String>),
    TunedLoaded(TunedInfo),
    TunedFailed {
        dir: PathBuf,
        error: String,
    },
    /// The tuned model was forgotten (`LoadTuned { dir: None }`).
    TunedCleared,
    Preview(Box<DataPreview>),
    PreviewFailed {
        path: PathBuf,
        error: String,
    },
    MeanChanges {
        source: String,
        changes: Result<HeadChanges, String>,
    },
    Explained {
        key: ExplainKey,
        result: Result<Box<Explanation>, String>,
    },
    /// Integrated gradients' points done for `key` (delivered whatever the id).
    ExplainProgress {
        key: ExplainKey,
        done: usize,
        total: usize,
    },
    HeadImportance {
        /// The data file.
        source: String,
        result: Result<HeadImportance, String>,
    },
    /// Rows of the data file done (delivered whatever the id).
    ImportanceProgress {
        done: usize,
        total: usize,
    },
    /// The compare view's explanations before and after fine-tuning.
    CompareExplained {
        key: CompareKey,
        result: Result<Box<BeforeAfter<Explanation>>, String>,
    },
    /// Integrated gradients' points done on one side (delivered whatever the id).
    CompareExplainProgress {
        key: CompareKey,
        side: Side,
        done: usize,
        total: usize,
    },
    /// Head importance before and after fine-tuning.
    CompareImportance {
        /// The data file.
        source: String,
        result: Result<Box<BeforeAfter<HeadImportance>>, String>,
    },
    /// Rows done on one side (delivered whatever the id).
    CompareImportanceProgress {
        side: Side,
        done: usize,
        total: usize,
    },
    /// The Heads view's run.
    Heads {
        /// The data file.
        source: String,
        result: Result<Box<HeadsAnswer>, String>,
    },
    /// Rows done, on the base model or the tuned one (delivered whatever the id).
    HeadsProgress {
        tuned: bool,
        done: usize,
        total: usize,
    },
    /// A request panicked; the worker goes on with the models it had.
    Crashed {
        message: String,
    },
    /// The worker's thread was gone and a fresh one started, with no model:
    /// whatever was loaded must be loaded again.
    Restarted {
        message: String,
    },
}

impl Response {
    /// The slot this answers; `None`: always delivered.
    pub fn slot(&self) -> Option<Slot> {
        match self {
            Response::Loaded(_) | Response::LoadFailed { .. } => Some(Slot::Load),
            Response::Analysis { .. } | Response::AnalysisFailed { .. } => Some(Slot::Analyze),
            Response::TunedLoaded(_) | Response::TunedFailed { .. } | Response::TunedCleared => {
                Some(Slot::Tuned)
            }
            Response::Preview(_) | Response::PreviewFailed { .. } => Some(Slot::Preview),
            Response::MeanChanges { .. } => Some(Slot::MeanChanges),
            Response::Explained { .. } => Some(Slot::Explain),
            Response::HeadImportance { .. } => Some(Slot::HeadImportance),
            Response::CompareExplained { .. } => Some(Slot::CompareExplain),
            Response::CompareImportance { .. } => Some(Slot::CompareImportance),
            Response::Heads { .. } => Some(Slot::Heads),
            Response::MlmModels(_)
            | Response::ExplainProgress { .. }
            | Response::ImportanceProgress { .. }
            | Response::CompareExplainProgress { .. }
            | Response::CompareImportanceProgress { .. }
            | Response::HeadsProgress { .. }
            | Response::Crashed { .. }
            | Response::Restarted { .. } => None,
        }
    }
}

/// A request on its way to the worker.
pub(super) struct Envelope {
    pub id: RequestId,
    pub request: Request,
}

/// An answer on its way back: `id` is its request's.
pub(super) struct Reply {
    pub id: RequestId,
    pub response: Response,
}

/// The tuned side of the compare view.
#[derive(Debug, Clone)]
pub struct TunedInfo {
    pub dir: PathBuf,
    /// Epochs with a checkpoint (`epochs/epoch-N`), for the slider.
    pub epochs: Vec<usize>,
    /// The epoch shown (`None`: the saved checkpoint).
    pub shown_epoch: Option<usize>,
    pub report: Option<Report>,
    pub has_mlm: bool,
    pub labels: Vec<String>,
}
