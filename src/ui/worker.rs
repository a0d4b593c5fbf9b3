//! The model worker: one thread owns the loaded models and the device and runs
//! every forward pass; the UI sends requests and receives plain-data results.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::thread;

use candle_core::Device;

use crate::catalog;
use crate::compare::{self, Comparison, HeadChanges};
use crate::data::Columns;
use crate::engine::{Analysis, LoadedModel};
use crate::train::preview::DataPreview;
use crate::train::save::epoch_checkpoints;
use crate::train::Report;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeRequest {
    /// Increases with every request; answers to older ones are stale.
    pub generation: u64,
    pub text_a: String,
    pub text_b: Option<String>,
    pub masked: Vec<usize>,
    pub top_k: usize,
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
        generation: u64,
        analysis: Box<Analysis>,
        /// The tuned model on the same input, when one is loaded.
        comparison: Option<Box<Comparison>>,
    },
    AnalysisFailed {
        generation: u64,
        error: String,
    },
    /// Models found on this machine that have a masked-LM head.
    MlmModels(Vec<String>),
    TunedLoaded(TunedInfo),
    TunedFailed {
        dir: PathBuf,
        error: String,
    },
    Preview(Box<DataPreview>),
    PreviewFailed {
        path: PathBuf,
        error: String,
    },
    MeanChanges {
        source: String,
        changes: Result<HeadChanges, String>,
    },
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

/// A fine-tuned run loaded for comparison.
struct TunedRun {
    dir: PathBuf,
    saved: LoadedModel,
    /// `epochs/epoch-0`: the base with the run's fresh head.
    initial: Option<LoadedModel>,
    shown: Option<(usize, LoadedModel)>,
    epochs: Vec<(usize, PathBuf)>,
    report: Option<Report>,
}

impl TunedRun {
    fn model(&self) -> &LoadedModel {
        self.shown.as_ref().map_or(&self.saved, |(_, m)| m)
    }

    fn info(&self) -> TunedInfo {
        let m = self.model();
        TunedInfo {
            dir: self.dir.clone(),
            epochs: self.epochs.iter().map(|e| e.0).collect(),
            shown_epoch: self.shown.as_ref().map(|s| s.0),
            report: self.report.clone(),
            has_mlm: m.model.mlm.is_some(),
            labels: m.config().labels.clone(),
        }
    }
}

/// The UI's end of the worker.
pub struct WorkerHandle {
    requests: Sender<Request>,
    responses: Receiver<Response>,
}

impl WorkerHandle {
    /// Start the worker; `notify` is called after each response (repaint the UI).
    pub fn spawn(
        device: Device,
        examples: Vec<(String, Option<String>)>,
        notify: impl Fn() + Send + 'static,
    ) -> Self {
        let (req_tx, req_rx) = channel();
        let (resp_tx, resp_rx) = channel();
        thread::Builder::new()
            .name("bertscope-worker".into())
            .spawn(move || Worker::new(device, examples, resp_tx, notify).run(req_rx))
            .ok();
        WorkerHandle {
            requests: req_tx,
            responses: resp_rx,
        }
    }

    /// Send a request; false when the worker has gone away.
    pub fn send(&self, request: Request) -> bool {
        self.requests.send(request).is_ok()
    }

    /// Every response received so far.
    pub fn poll(&self) -> Vec<Response> {
        self.responses.try_iter().collect()
    }
}

struct Worker<F> {
    device: Device,
    examples: Vec<(String, Option<String>)>,
    model: Option<LoadedModel>,
    tuned: Option<TunedRun>,
    out: Sender<Response>,
    notify: F,
}

impl<F: Fn()> Worker<F> {
    fn new(
        device: Device,
        examples: Vec<(String, Option<String>)>,
        out: Sender<Response>,
        notify: F,
    ) -> Self {
        Worker {
            device,
            examples,
            model: None,
            tuned: None,
            out,
            notify,
        }
    }

    fn send(&self, response: Response) -> bool {
        let ok = self.out.send(response).is_ok();
        (self.notify)();
        ok
    }

    fn run(mut self, requests: Receiver<Request>) {
        let mlm_models = catalog::scan()
            .0
            .into_iter()
            .filter(|m| m.has_mlm_head)
            .map(|m| m.name)
            .collect();
        if !self.send(Response::MlmModels(mlm_models)) {
            return;
        }
        while let Ok(first) = requests.recv() {
            // Coalesce: of everything queued, only the latest load and the latest
            // analysis matter; older analyses are stale. Other requests run in order.
            let mut load = None;
            let mut analyze = None;
            let mut others = Vec::new();
            let mut next = Some(first);
            loop {
                match next.take() {
                    Some(Request::Load { spec }) => {
                        load = Some(spec);
                        analyze = None;
                    }
                    Some(Request::Analyze(req)) => analyze = Some(req),
                    Some(other) => others.push(other),
                    None => {}
                }
                match requests.try_recv() {
                    Ok(r) => next = Some(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if let Some(spec) = load {
                if !self.load(spec) {
                    return;
                }
            }
            for request in others {
                if !self.other(request) {
                    return;
                }
            }
            if let Some(req) = analyze {
                if !self.analyze(req) {
                    return;
                }
            }
        }
    }

    /// Requests other than loading the base model and analysing input.
    fn other(&mut self, request: Request) -> bool {
        match request {
            Request::LoadTuned { dir: None } => {
                self.tuned = None;
                true
            }
            Request::LoadTuned { dir: Some(dir) } => self.load_tuned(dir),
            Request::ShowEpoch { epoch } => self.show_epoch(epoch),
            Request::Preview { path, columns } => {
                let tokenizer = self.model.as_ref().map(|m| &m.tokenizer);
                match crate::train::preview::preview(&path, columns, tokenizer) {
                    Ok(p) => self.send(Response::Preview(Box::new(p))),
                    Err(e) => self.send(Response::PreviewFailed {
                        path,
                        error: e.to_string(),
                    }),
                }
            }
            Request::MeanChanges {
                path,
                columns,
                limit,
            } => {
                let source = format!("the first {limit} rows of {}", path.display());
                let changes = self.mean_changes(&path, columns, limit);
                self.send(Response::MeanChanges { source, changes })
            }
            Request::Load { .. } | Request::Analyze(_) => true,
        }
    }

    fn mean_changes(
        &self,
        path: &std::path::Path,
        columns: Columns,
        limit: usize,
    ) -> Result<HeadChanges, String> {
        let (Some(base), Some(run)) = (&self.model, &self.tuned) else {
            return Err("load a base and a tuned model first".into());
        };
        let options = crate::data::ReadOptions {
            columns,
            skip_bad_rows: true,
            ..Default::default()
        };
        let data = crate::data::read(path, &options).map_err(|e| e.to_string())?;
        let inputs: Vec<(String, Option<String>)> = data
            .examples
            .into_iter()
            .take(limit)
            .map(|e| (e.text_a, e.text_b))
            .collect();
        compare::mean_changes(base, run.model(), &inputs)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no row that both models tokenise alike".into())
    }

    fn load_tuned(&mut self, dir: PathBuf) -> bool {
        let load =
            |d: &std::path::Path| LoadedModel::load_dir(&d.display().to_string(), d, &self.device);
        let result = load(&dir).and_then(|saved| {
            let epochs = epoch_checkpoints(&dir);
            let initial = match epochs.iter().find(|e| e.0 == 0) {
                Some((_, d)) => Some(load(d)?),
                None => None,
            };
            let report = Report::load(&dir).ok().flatten();
            Ok(TunedRun {
                dir: dir.clone(),
                saved,
                initial,
                shown: None,
                epochs,
                report,
            })
        });
        match result {
            Ok(run) => {
                let info = run.info();
                self.tuned = Some(run);
                self.send(Response::TunedLoaded(info))
            }
            Err(e) => self.send(Response::TunedFailed {
                dir,
                error: e.to_string(),
            }),
        }
    }

    fn show_epoch(&mut self, epoch: Option<usize>) -> bool {
        let Some(run) = &mut self.tuned else {
            return true;
        };
        let target = epoch.and_then(|e| run.epochs.iter().find(|x| x.0 == e).cloned());
        run.shown = None;
        if let Some((e, dir)) = target {
            match LoadedModel::load_dir(&dir.display().to_string(), &dir, &self.device) {
                Ok(m) => run.shown = Some((e, m)),
                Err(err) => {
                    return self.send(Response::TunedFailed {
                        dir,
                        error: err.to_string(),
                    })
                }
            }
        }
        let info = run.info();
        self.send(Response::TunedLoaded(info))
    }

    fn load(&mut self, spec: String) -> bool {
        match LoadedModel::load(&spec, &self.device) {
            Ok(model) => {
                let info = self.describe(&spec, &model);
                self.model = Some(model);
                self.send(Response::Loaded(info))
            }
            Err(e) => self.send(Response::LoadFailed {
                spec,
                error: e.to_string(),
            }),
        }
    }

    fn describe(&self, spec: &str, model: &LoadedModel) -> ModelInfo {
        let example_unknown = self
            .examples
            .iter()
            .map(|(a, b)| unknown_share(model, a, b.as_deref()))
            .collect();
        let config = model.config();
        ModelInfo {
            spec: spec.to_string(),
            path: model.dir.display().to_string(),
            layers: config.num_layers(),
            heads: config.num_heads(),
            vocab_size: config.raw.vocab_size,
            has_mlm: model.model.mlm.is_some(),
            example_unknown,
        }
    }

    fn analyze(&mut self, req: AnalyzeRequest) -> bool {
        let Some(model) = &self.model else {
            return self.send(Response::AnalysisFailed {
                generation: req.generation,
                error: "no model loaded".into(),
            });
        };
        let b = req.text_b.as_deref().filter(|b| !b.trim().is_empty());
        let top_k = req.top_k.max(1);
        let result = model
            .analyze(&req.text_a, b, &req.masked, top_k)
            .and_then(|analysis| {
                let comparison = match &self.tuned {
                    Some(run) => Some(Box::new(compare::compare_input(
                        (model, &analysis),
                        run.model(),
                        run.initial.as_ref(),
                        (&req.text_a, b),
                        &req.masked,
                        top_k,
                    )?)),
                    None => None,
                };
                Ok((analysis, comparison))
            });
        match result {
            Ok((analysis, comparison)) => self.send(Response::Analysis {
                generation: req.generation,
                analysis: Box::new(analysis),
                comparison,
            }),
            Err(e) => self.send(Response::AnalysisFailed {
                generation: req.generation,
                error: e.to_string(),
            }),
        }
    }
}

/// Share of an example's tokens (specials excluded) that are `[UNK]`.
fn unknown_share(model: &LoadedModel, a: &str, b: Option<&str>) -> f32 {
    let Ok(enc) = model.encode(a, b) else {
        return 1.0;
    };
    let unk = model.tokenizer.token_to_id("[UNK]");
    let ordinary: Vec<u32> = enc
        .tokens
        .iter()
        .zip(&enc.input_ids)
        .filter(|(t, &id)| !crate::tokenize::is_special(t) || Some(id) == unk)
        .map(|(_, &id)| id)
        .collect();
    if ordinary.is_empty() {
        return 0.0;
    }
    ordinary.iter().filter(|&&id| Some(id) == unk).count() as f32 / ordinary.len() as f32
}
