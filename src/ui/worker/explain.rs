//! The worker's explanations: one input's attributions (integrated gradients
//! report their progress) and head importance over a data file (cancellable).

use super::messages::{ExplainKey, ImportanceRequest, Reply, RequestId, Response};
use super::Worker;
use crate::data::ReadOptions;
use crate::explain;

impl Worker {
    /// Send a progress message now (it is not the request's answer).
    pub(super) fn progress(&self, id: RequestId, response: Response) {
        let _ = self.out.send(Reply { id, response });
        (self.notify)();
    }

    pub(super) fn explain(&self, id: RequestId, key: ExplainKey) -> bool {
        let Some(model) = &self.model else {
            let result = Err("no model loaded".into());
            return self.reply(id, Response::Explained { key, result });
        };
        let mut on_progress = |done: usize, total: usize| {
            let key = key.clone();
            self.progress(id, Response::ExplainProgress { key, done, total });
        };
        let text_b = key.text_b.as_deref().filter(|b| !b.trim().is_empty());
        let result = explain::explain(
            model,
            &key.text_a,
            text_b,
            key.target.as_deref(),
            &mut on_progress,
        )
        .map(Box::new)
        .map_err(|e| e.to_string());
        self.reply(id, Response::Explained { key, result })
    }

    pub(super) fn head_importance(&self, id: RequestId, req: ImportanceRequest) -> bool {
        let source = req.path.display().to_string();
        let Some(model) = &self.model else {
            let result = Err("no model loaded".into());
            return self.reply(id, Response::HeadImportance { source, result });
        };
        let options = ReadOptions {
            columns: req.columns,
            skip_bad_rows: true,
            ..Default::default()
        };
        let mut on_rows = |done: usize, total: usize| {
            self.progress(id, Response::ImportanceProgress { done, total });
        };
        let result = explain::head_importance_of_file(
            model,
            &req.path,
            &options,
            req.max_rows,
            &req.cancel.0,
            &mut on_rows,
        )
        .map_err(|e| e.to_string());
        self.reply(id, Response::HeadImportance { source, result })
    }
}
