//! The worker's before/after answers for the compare view: the input
//! explained by the "before" classifier (epoch 0, else the base's own) and
//! by the tuned model, and head importance of both over a data file
//! (cancellable). Progress is sent per side as it goes.

use super::messages::{CompareKey, ImportanceRequest, RequestId, Response};
use super::Worker;
use crate::compare;
use crate::data::ReadOptions;

const NO_TUNED: &str = "load a base and a tuned model first";

impl Worker {
    pub(super) fn compare_explain(&self, id: RequestId, mut key: CompareKey) -> bool {
        let (Some(base), Some(run)) = (&self.model, &self.tuned) else {
            let result = Err(NO_TUNED.into());
            return self.reply(id, Response::CompareExplained { key, result });
        };
        // The answer names the tuned model it was computed on.
        key.tuned = run.dir.clone();
        key.epoch = run.shown.as_ref().map(|s| s.0);
        let mut on_progress = |side, done, total| {
            let key = key.clone();
            let progress = Response::CompareExplainProgress {
                key,
                side,
                done,
                total,
            };
            self.progress(id, progress);
        };
        let text_b = key.text_b.as_deref().filter(|b| !b.trim().is_empty());
        let sides = compare::explain_before_after(
            compare::Models {
                base,
                tuned: run.model(),
                initial: run.initial.as_ref(),
            },
            (&key.text_a, text_b),
            &mut on_progress,
        );
        let result = Ok(Box::new(sides));
        self.reply(id, Response::CompareExplained { key, result })
    }

    pub(super) fn compare_importance(&self, id: RequestId, req: ImportanceRequest) -> bool {
        let source = req.path.display().to_string();
        let (Some(base), Some(run)) = (&self.model, &self.tuned) else {
            let result = Err(NO_TUNED.into());
            return self.reply(id, Response::CompareImportance { source, result });
        };
        let options = ReadOptions {
            columns: req.columns,
            skip_bad_rows: true,
            ..Default::default()
        };
        let mut on_rows = |side, done, total| {
            let progress = Response::CompareImportanceProgress { side, done, total };
            self.progress(id, progress);
        };
        let result = compare::importance_before_after(
            compare::Models {
                base,
                tuned: run.model(),
                initial: run.initial.as_ref(),
            },
            &req.path,
            &options,
            req.max_rows,
            &req.cancel.0,
            &mut on_rows,
        )
        .map(Box::new)
        .map_err(|e| e.to_string());
        self.reply(id, Response::CompareImportance { source, result })
    }
}
