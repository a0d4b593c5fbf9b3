//! The model worker: one thread owns the loaded models and the device and runs
//! every forward pass; the UI sends requests and receives plain-data results.
//! Every request carries an id and its answer the same id, so the UI drops
//! answers to requests it has since replaced (`handle.rs`). A panic while
//! serving a request becomes that request's error; the worker keeps serving.

mod explain;
mod handle;
mod heads;
mod messages;
mod sides;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;

use candle_core::Device;

use crate::catalog;
use crate::compare::{self, HeadChanges};
use crate::data::Columns;
use crate::engine::LoadedModel;
use crate::train::save::epoch_checkpoints;
use crate::train::Report;
use crate::ui::support::job;

pub use handle::WorkerHandle;
use messages::{mean_source, Envelope, Reply};
pub use messages::{
    AnalyzeRequest, CancelFlag, CompareKey, ExplainKey, Fault, HeadsAnswer, HeadsOutcome,
    HeadsRequest, HeadsSource, ImportanceRequest, ModelInfo, Request, RequestId, Response, Slot,
    TunedInfo,
};

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

/// Start a worker thread; `notify` is called after each answer (repaint the UI).
/// The thread ends when the UI's end of a channel goes away.
fn start_thread(
    device: Device,
    examples: Vec<(String, Option<String>)>,
    notify: impl Fn() + Send + Sync + 'static,
) -> (Sender<Envelope>, Receiver<Reply>) {
    let (req_tx, req_rx) = std::sync::mpsc::channel();
    let (resp_tx, resp_rx) = std::sync::mpsc::channel();
    // A failed spawn drops the closure and with it the channels' far ends:
    // the handle sees them disconnected, as for any thread that is gone.
    let _ = std::thread::Builder::new()
        .name("bertscope-worker".into())
        .spawn(move || Worker::new(device, examples, resp_tx, Arc::new(notify)).serve(req_rx));
    (req_tx, resp_rx)
}

/// Of everything queued, only the latest load, analysis and explanations
/// (the Explain view's, the compare view's) matter (older ones are stale,
/// and a load makes those before it moot); other requests run in order,
/// after the load and before the analysis and the explanations. `None`: the
/// UI is gone.
fn next_batch(requests: &Receiver<Envelope>) -> Option<Vec<Envelope>> {
    let mut next = Some(requests.recv().ok()?);
    let (mut load, mut analyze, mut others) = (None, None, Vec::new());
    let (mut explain, mut sides) = (None, None);
    while let Some(envelope) = next.take() {
        match envelope.request {
            Request::Load { .. } => {
                load = Some(envelope);
                analyze = None;
                explain = None;
                sides = None;
            }
            Request::Analyze(_) => analyze = Some(envelope),
            Request::Explain(_) => explain = Some(envelope),
            Request::CompareExplain(_) => sides = Some(envelope),
            _ => others.push(envelope),
        }
        match requests.try_recv() {
            Ok(e) => next = Some(e),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return None,
        }
    }
    Some(
        load.into_iter()
            .chain(others)
            .chain(analyze)
            .chain(explain)
            .chain(sides)
            .collect(),
    )
}

/// Called after each answer (repaints the UI); shared with the preview threads.
type Notify = Arc<dyn Fn() + Send + Sync>;

struct Worker {
    device: Device,
    examples: Vec<(String, Option<String>)>,
    model: Option<LoadedModel>,
    tuned: Option<TunedRun>,
    out: Sender<Reply>,
    notify: Notify,
}

impl Worker {
    fn new(
        device: Device,
        examples: Vec<(String, Option<String>)>,
        out: Sender<Reply>,
        notify: Notify,
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

    /// Answer request `id`; false when the UI has gone away.
    fn reply(&self, id: RequestId, response: Response) -> bool {
        let ok = self.out.send(Reply { id, response }).is_ok();
        (self.notify)();
        ok
    }

    fn serve(mut self, requests: Receiver<Envelope>) {
        let mlm_models = catalog::scan()
            .0
            .into_iter()
            .filter(|m| m.has_mlm_head)
            .map(|m| m.name)
            .collect();
        if !self.reply(0, Response::MlmModels(mlm_models)) {
            return;
        }
        while let Some(batch) = next_batch(&requests) {
            for Envelope { id, request } in batch {
                if !self.serve_one(id, request) {
                    return;
                }
            }
        }
    }

    /// Serve one request, turning a panic into its error; false when the
    /// thread should end.
    fn serve_one(&mut self, id: RequestId, request: Request) -> bool {
        let copy = request.clone();
        // A request changes the worker's state only by assigning a fully built
        // value once its work is done (a model, a tuned run, the epoch shown),
        // and the models have no interior mutability: a request that unwinds
        // leaves the state as it was before, so going on with it is sound.
        let outcome = job::catch(AssertUnwindSafe(|| self.handle(id, request)));
        match outcome {
            Ok(alive) => alive,
            Err(panic) => {
                let message = format!("the model worker crashed: {panic}; restarted");
                let failed = match copy.failure(message.clone()) {
                    Some(failure) => self.reply(id, failure),
                    None => true,
                };
                failed && self.reply(0, Response::Crashed { message })
            }
        }
    }

    /// One request; false when the thread should end.
    fn handle(&mut self, id: RequestId, request: Request) -> bool {
        match request {
            Request::Load { spec } => self.load(id, spec),
            Request::Analyze(req) => self.analyze(id, req),
            Request::LoadTuned { dir: None } => {
                self.tuned = None;
                self.reply(id, Response::TunedCleared)
            }
            Request::LoadTuned { dir: Some(dir) } => self.load_tuned(id, dir),
            Request::ShowEpoch { epoch } => self.show_epoch(id, epoch),
            Request::Preview { path, columns } => self.preview(id, path, columns),
            Request::MeanChanges {
                path,
                columns,
                limit,
            } => {
                let changes = self.mean_changes(&path, columns, limit);
                let source = mean_source(&path, limit);
                self.reply(id, Response::MeanChanges { source, changes })
            }
            Request::Explain(key) => self.explain(id, key),
            Request::HeadImportance(req) => self.head_importance(id, req),
            Request::CompareExplain(key) => self.compare_explain(id, key),
            Request::CompareImportance(req) => self.compare_importance(id, req),
            Request::Heads(req) => self.heads(id, req),
            Request::InjectFault(Fault::Panic) => panic!("a fault injected by a test"),
            Request::InjectFault(Fault::Exit) => false,
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
        // Only the rows it averages over are read.
        let data = crate::data::read_head(path, &options, limit).map_err(|e| e.to_string())?;
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

    /// A data preview streams the whole file: it runs on a thread of its own
    /// (with a copy of the tokenizer), so the model stays free for analyses.
    fn preview(&self, id: RequestId, path: PathBuf, columns: Option<Columns>) -> bool {
        let tokenizer = self.model.as_ref().map(|m| m.tokenizer.clone());
        let (out, notify) = (self.out.clone(), Arc::clone(&self.notify));
        let failed = |path: PathBuf, error: String| Response::PreviewFailed { path, error };
        let task_path = path.clone();
        let spawned = std::thread::Builder::new()
            .name("bertscope-preview".into())
            .spawn(move || {
                let work =
                    || crate::train::preview::preview(&task_path, columns, tokenizer.as_ref());
                let response = match job::catch(AssertUnwindSafe(work)) {
                    Ok(Ok(p)) => Response::Preview(Box::new(p)),
                    Ok(Err(e)) => failed(task_path, e.to_string()),
                    Err(panic) => failed(task_path, format!("the preview crashed: {panic}")),
                };
                let _ = out.send(Reply { id, response });
                notify();
            });
        match spawned {
            Ok(_) => true,
            Err(e) => self.reply(id, failed(path, format!("cannot start the preview: {e}"))),
        }
    }

    fn load_tuned(&mut self, id: RequestId, dir: PathBuf) -> bool {
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
                self.reply(id, Response::TunedLoaded(info))
            }
            Err(e) => self.reply(
                id,
                Response::TunedFailed {
                    dir,
                    error: e.to_string(),
                },
            ),
        }
    }

    fn show_epoch(&mut self, id: RequestId, epoch: Option<usize>) -> bool {
        let Some(run) = &self.tuned else {
            return true;
        };
        let target = epoch.and_then(|e| run.epochs.iter().find(|x| x.0 == e).cloned());
        // Load first, assign after: a failure (or a panic) leaves the run as it was.
        let shown = match target {
            Some((e, dir)) => {
                match LoadedModel::load_dir(&dir.display().to_string(), &dir, &self.device) {
                    Ok(m) => Some((e, m)),
                    Err(err) => {
                        let error = err.to_string();
                        return self.reply(id, Response::TunedFailed { dir, error });
                    }
                }
            }
            None => None,
        };
        let Some(run) = &mut self.tuned else {
            return true;
        };
        run.shown = shown;
        let info = run.info();
        self.reply(id, Response::TunedLoaded(info))
    }

    fn load(&mut self, id: RequestId, spec: String) -> bool {
        match LoadedModel::load(&spec, &self.device) {
            Ok(model) => {
                let info = self.describe(&spec, &model);
                self.model = Some(model);
                self.reply(id, Response::Loaded(info))
            }
            Err(e) => self.reply(
                id,
                Response::LoadFailed {
                    spec,
                    error: e.to_string(),
                },
            ),
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
            labels: model
                .model
                .classifier
                .as_ref()
                .map_or_else(Vec::new, |_| config.labels.clone()),
            example_unknown,
        }
    }

    fn analyze(&mut self, id: RequestId, req: AnalyzeRequest) -> bool {
        let Some(model) = &self.model else {
            let error = "no model loaded".into();
            return self.reply(id, Response::AnalysisFailed { error });
        };
        let b = req.text_b.as_deref().filter(|b| !b.trim().is_empty());
        let top_k = req.top_k.max(1);
        let result = model
            .analyze(&req.text_a, b, &req.masked, top_k, &req.inspect)
            .and_then(|analysis| {
                let comparison = match &self.tuned {
                    Some(run) => Some(Box::new(compare::compare_input(
                        (model, &analysis),
                        run.model(),
                        run.initial.as_ref(),
                        (&req.text_a, b),
                        (&req.masked, top_k),
                        &req.inspect.ablate,
                    )?)),
                    None => None,
                };
                Ok((analysis, comparison))
            });
        let response = match result {
            Ok((analysis, comparison)) => Response::Analysis {
                analysis: Box::new(analysis),
                comparison,
            },
            Err(e) => Response::AnalysisFailed {
                error: e.to_string(),
            },
        };
        self.reply(id, response)
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
