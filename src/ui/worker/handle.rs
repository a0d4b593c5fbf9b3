//! The UI's end of the model worker: numbers each request, drops answers to
//! requests that a newer one of the same kind has replaced, and notices a
//! worker thread that is gone: it starts a fresh one and says so.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;

use candle_core::Device;

use super::{start_thread, Envelope, Reply, Request, RequestId, Response, Slot};

/// Fresh worker threads started for one handle before it gives up: a thread
/// that dies at every start would otherwise be restarted every frame.
const MAX_RESTARTS: usize = 3;

type Spawn = Box<dyn Fn() -> (Sender<Envelope>, Receiver<Reply>)>;

/// The channels to the worker thread, while there is one.
enum Link {
    Up {
        requests: Sender<Envelope>,
        replies: Receiver<Reply>,
    },
    /// Restarted too often: requests go nowhere.
    Down,
}

pub struct WorkerHandle {
    link: Link,
    spawn: Spawn,
    restarts: usize,
    next_id: RequestId,
    /// The newest request of each slot: only its answer is delivered.
    latest: HashMap<Slot, RequestId>,
    /// Slots whose newest request has no answer yet.
    waiting: HashSet<Slot>,
    /// Messages of the handle itself, delivered by the next `poll`.
    notices: Vec<Response>,
}

impl WorkerHandle {
    /// Start the worker; `notify` is called after each answer (repaint the UI).
    pub fn spawn(
        device: Device,
        examples: Vec<(String, Option<String>)>,
        notify: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let notify = Arc::new(notify);
        Self::with_spawner(Box::new(move || {
            let notify = notify.clone();
            start_thread(device.clone(), examples.clone(), move || notify())
        }))
    }

    fn with_spawner(spawn: Spawn) -> Self {
        let (requests, replies) = spawn();
        WorkerHandle {
            link: Link::Up { requests, replies },
            spawn,
            restarts: 0,
            next_id: 0,
            latest: HashMap::new(),
            waiting: HashSet::new(),
            notices: Vec::new(),
        }
    }

    /// Send a request; answers to older requests of its slot become stale.
    pub fn send(&mut self, request: Request) -> RequestId {
        self.next_id += 1;
        let id = self.next_id;
        if let Some(slot) = request.slot() {
            self.latest.insert(slot, id);
            self.waiting.insert(slot);
        }
        let sent = match &self.link {
            Link::Up { requests, .. } => requests.send(Envelope { id, request }).is_ok(),
            Link::Down => false,
        };
        if !sent {
            self.waiting.clear();
            self.restart();
        }
        id
    }

    /// The answers received since the last call, stale ones dropped, and
    /// `Restarted` when the worker's thread was found gone.
    pub fn poll(&mut self) -> Vec<Response> {
        let mut fresh = Vec::new();
        let mut gone = false;
        if let Link::Up { replies, .. } = &self.link {
            loop {
                match replies.try_recv() {
                    Ok(reply) => fresh.push(reply),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            }
        }
        let mut answers: Vec<Response> = fresh
            .into_iter()
            .filter_map(|Reply { id, response }| self.accept(id, &response).then_some(response))
            .collect();
        if gone {
            self.waiting.clear();
            self.restart();
        }
        answers.append(&mut self.notices);
        answers
    }

    /// Whether the newest request of `slot` still waits for its answer.
    pub fn waiting(&self, slot: Slot) -> bool {
        self.waiting.contains(&slot)
    }

    /// Is this the answer to the newest request of its slot?
    fn accept(&mut self, id: RequestId, response: &Response) -> bool {
        let Some(slot) = response.slot() else {
            return true;
        };
        if self.latest.get(&slot) != Some(&id) {
            return false;
        }
        self.waiting.remove(&slot);
        true
    }

    /// Start a fresh worker thread (requests in flight are lost: the app sends
    /// them again on `Restarted`), unless it was restarted too often.
    fn restart(&mut self) {
        if matches!(self.link, Link::Down) {
            return;
        }
        if self.restarts >= MAX_RESTARTS {
            self.link = Link::Down;
            self.notices.push(Response::Restarted {
                message: "the model worker keeps stopping; restart bertscope".into(),
            });
            return;
        }
        self.restarts += 1;
        let (requests, replies) = (self.spawn)();
        self.link = Link::Up { requests, replies };
        self.notices.push(Response::Restarted {
            message: "the model worker stopped unexpectedly; restarted".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use super::*;
    use crate::ui::worker::AnalyzeRequest;

    fn analyze(text: &str) -> Request {
        Request::Analyze(AnalyzeRequest {
            text_a: text.into(),
            text_b: None,
            masked: Vec::new(),
            top_k: 1,
            inspect: Default::default(),
        })
    }

    fn failed(error: &str) -> Response {
        Response::AnalysisFailed {
            error: error.into(),
        }
    }

    /// The worker's ends of the channels of one thread.
    type WorkerEnds = (Receiver<Envelope>, Sender<Reply>);

    /// A handle whose "worker" is the test: it gets the far ends of the channels.
    fn handle() -> (WorkerHandle, Receiver<WorkerEnds>) {
        let (ends_tx, ends_rx) = channel();
        let spawn: Spawn = Box::new(move || {
            let (req_tx, req_rx) = channel();
            let (resp_tx, resp_rx) = channel();
            let _ = ends_tx.send((req_rx, resp_tx));
            (req_tx, resp_rx)
        });
        (WorkerHandle::with_spawner(spawn), ends_rx)
    }

    #[test]
    fn answers_to_replaced_requests_are_dropped_in_every_slot() {
        let (mut h, ends) = handle();
        let (_requests, replies) = ends.recv().unwrap();
        let old = h.send(analyze("old"));
        let new = h.send(analyze("new"));
        let preview_old = h.send(Request::Preview {
            path: "a.tsv".into(),
            columns: None,
        });
        let preview_new = h.send(Request::Preview {
            path: "b.tsv".into(),
            columns: None,
        });
        let preview_failed = |p: &str| Response::PreviewFailed {
            path: p.into(),
            error: "x".into(),
        };
        for (id, response) in [
            (old, failed("old")),
            (preview_new, preview_failed("b.tsv")),
            (preview_old, preview_failed("a.tsv")),
            (0, Response::MlmModels(vec![])),
        ] {
            replies.send(Reply { id, response }).unwrap();
        }
        let got = h.poll();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[0], Response::PreviewFailed { path, .. } if path.ends_with("b.tsv")));
        assert!(matches!(got[1], Response::MlmModels(_)));
        assert!(h.waiting(Slot::Analyze));
        replies
            .send(Reply {
                id: new,
                response: failed("new"),
            })
            .unwrap();
        assert!(matches!(&h.poll()[..], [Response::AnalysisFailed { error }] if error == "new"));
        assert!(!h.waiting(Slot::Analyze));
    }

    #[test]
    fn a_vanished_worker_is_restarted_and_nothing_waits_for_it() {
        let (mut h, ends) = handle();
        let first = ends.recv().unwrap();
        h.send(analyze("lost"));
        assert!(h.waiting(Slot::Analyze));
        drop(first); // the thread is gone
        let got = h.poll();
        assert!(
            matches!(&got[..], [Response::Restarted { message }] if message.contains("stopped")),
            "{got:?}"
        );
        assert!(!h.waiting(Slot::Analyze));
        // The fresh worker gets the next request.
        let (requests, _replies) = ends.recv().unwrap();
        let id = h.send(analyze("again"));
        assert_eq!(requests.recv().unwrap().id, id);
    }

    #[test]
    fn a_worker_that_keeps_dying_is_given_up_on() {
        let (mut h, ends) = handle();
        let mut restarted = 0;
        for _ in 0..MAX_RESTARTS + 2 {
            while ends.try_recv().is_ok() {} // every thread dies at once
            restarted += h.poll().len();
        }
        assert_eq!(restarted, MAX_RESTARTS + 1);
        h.send(analyze("nowhere"));
        assert!(h.poll().is_empty());
    }
}
