//! The model worker: one thread owns the loaded models and the device and runs
//! every forward pass; the UI sends requests and receives plain-data results.

use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::thread;

use candle_core::Device;

use crate::catalog;
use crate::engine::{Analysis, LoadedModel};

/// A request from the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Load { spec: String },
    Analyze(AnalyzeRequest),
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
    },
    AnalysisFailed {
        generation: u64,
        error: String,
    },
    /// Models found on this machine that have a masked-LM head.
    MlmModels(Vec<String>),
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
            // analysis matter; older analyses are stale.
            let mut load = None;
            let mut analyze = None;
            let mut next = Some(first);
            loop {
                match next.take() {
                    Some(Request::Load { spec }) => {
                        load = Some(spec);
                        analyze = None;
                    }
                    Some(Request::Analyze(req)) => analyze = Some(req),
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
            if let Some(req) = analyze {
                if !self.analyze(req) {
                    return;
                }
            }
        }
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
        match model.analyze(&req.text_a, b, &req.masked, req.top_k.max(1)) {
            Ok(analysis) => self.send(Response::Analysis {
                generation: req.generation,
                analysis: Box::new(analysis),
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
