//! The worker's Heads view runs: head statistics or the coreference probe
//! over a file, on the base model and on the tuned one when it is open,
//! with progress and a cancel that lands within a batch.

use super::messages::{HeadsAnswer, HeadsOutcome, HeadsRequest, HeadsSource, RequestId, Response};
use super::Worker;
use crate::data::{self, ReadOptions};
use crate::dataset;
use crate::engine::LoadedModel;
use crate::error::Result;
use crate::model::precision;

/// Rows whose own values the view lists.
pub const ROWS_LISTED: usize = 500;

impl Worker {
    pub(super) fn heads(&self, id: RequestId, req: HeadsRequest) -> bool {
        let source = req.source.path().display().to_string();
        let Some(model) = &self.model else {
            let result = Err("no model loaded".into());
            return self.reply(id, Response::Heads { source, result });
        };
        let tuned = self.tuned.as_ref().map(|t| t.model());
        let result = req
            .precision
            .check(model.model.device())
            .and_then(|()| {
                precision::scoped(req.precision, || self.run_heads(id, &req, model, tuned))
            })
            .map(Box::new)
            .map_err(|e| e.to_string());
        self.reply(id, Response::Heads { source, result })
    }

    fn run_heads(
        &self,
        id: RequestId,
        req: &HeadsRequest,
        model: &LoadedModel,
        tuned: Option<&LoadedModel>,
    ) -> Result<HeadsAnswer> {
        let cancel = &req.cancel.0;
        let progress_of = |is_tuned: bool| {
            move |done: usize, total: usize| {
                let response = Response::HeadsProgress {
                    tuned: is_tuned,
                    done,
                    total,
                };
                self.progress(id, response);
            }
        };
        match &req.source {
            HeadsSource::Statistics { path, columns } => {
                let data = if path.extension().is_some_and(|e| e == "txt") {
                    data::read_lines(path)?
                } else {
                    let options = ReadOptions {
                        columns: columns.clone(),
                        skip_bad_rows: true,
                        ..Default::default()
                    };
                    data::read(path, &options)?
                };
                let run = |m: &LoadedModel, progress: &mut dyn FnMut(usize, usize)| {
                    dataset::head_stats(m, &data, req.limits, ROWS_LISTED, progress, cancel)
                        .map(HeadsOutcome::Statistics)
                };
                let base = run(model, &mut progress_of(false))?;
                let tuned = tuned.map(|t| run(t, &mut progress_of(true))).transpose()?;
                let rows = data
                    .examples
                    .iter()
                    .take(ROWS_LISTED)
                    .map(|e| (e.text_a.clone(), e.text_b.clone()))
                    .collect();
                Ok(HeadsAnswer {
                    base,
                    tuned,
                    rows,
                    skipped: data.skipped.len(),
                    precision: req.precision,
                })
            }
            HeadsSource::Coreference { .. } | HeadsSource::Bundled { .. } => {
                let path = req.source.path();
                let (rows, skipped) = match &req.source {
                    HeadsSource::Bundled { text, .. } => (bundled_rows(text), Vec::new()),
                    _ => dataset::read_marked(path, "text", None, true)?,
                };
                let run = |m: &LoadedModel, progress: &mut dyn FnMut(usize, usize)| {
                    dataset::coref_probe(m, path, &rows, req.limits, true, progress, cancel)
                };
                let (base, left_out) = run(model, &mut progress_of(false))?;
                let tuned = tuned
                    .map(|t| {
                        run(t, &mut progress_of(true)).map(|(r, _)| HeadsOutcome::Coreference(r))
                    })
                    .transpose()?;
                Ok(HeadsAnswer {
                    base: HeadsOutcome::Coreference(base),
                    tuned,
                    rows: Vec::new(),
                    skipped: skipped.len() + left_out.len(),
                    precision: req.precision,
                })
            }
        }
    }
}

/// A bundled set's rows (a header line `text`, then one marked row a line).
fn bundled_rows(text: &str) -> Vec<dataset::MarkedRow> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| dataset::MarkedRow {
            line: i + 1,
            text: l.trim().to_string(),
        })
        .collect()
}
