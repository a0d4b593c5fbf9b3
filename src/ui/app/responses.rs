//! The model worker's answers, applied to the app's state. The handle has
//! already dropped answers to requests that newer ones replaced.

use crate::ui::app::startup::Answer;
use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::training::run::RunState;
use crate::ui::worker::{Request, Response, TunedInfo};

impl BertscopeApp {
    pub(super) fn handle(&mut self, response: Response) {
        match response {
            Response::Loaded(info) => self.model_loaded(info),
            Response::LoadFailed { spec, error } => {
                self.status = ModelStatus::Failed { spec, error };
                self.set_analysis(None);
            }
            Response::Analysis {
                analysis,
                comparison,
            } => {
                self.set_analysis(Some(*analysis));
                self.analysis_error = None;
                self.tuning.comparison = comparison.map(|c| *c);
            }
            Response::AnalysisFailed { error } => self.analysis_error = Some(error),
            Response::MlmModels(models) => self.mlm_models = models,
            Response::Preview(preview) => {
                self.startup.answered(Answer::Preview);
                self.settings.train.set_columns(&preview.columns);
                self.tuning.preview = Some(*preview);
                self.tuning.preview_error = None;
            }
            Response::PreviewFailed { error, .. } => {
                self.startup.answered(Answer::Preview);
                self.tuning.preview = None;
                self.tuning.preview_error = Some(error);
            }
            Response::TunedLoaded(info) => self.tuned_loaded(info),
            Response::TunedFailed { dir, error } => {
                self.startup.answered(Answer::Tuned);
                self.tuning.message = Some(format!(
                    "cannot open {} as the tuned model: {error}",
                    dir.display()
                ));
            }
            Response::TunedCleared => {
                self.tuning.tuned = None;
                self.tuning.comparison = None;
                self.tuning.before_after.models_changed();
            }
            Response::MeanChanges { source, changes } => {
                self.tuning.mean_changes = Some((source, changes));
            }
            Response::Explained { key, result } => self.explain.received(key, result.map(|e| *e)),
            Response::ExplainProgress { key, done, total } => {
                self.explain.progress(&key, done, total)
            }
            Response::HeadImportance { source, result } => {
                self.explain.importance.finished(source, result)
            }
            Response::ImportanceProgress { done, total } => {
                self.explain.importance.progress(done, total)
            }
            Response::CompareExplained { key, result } => {
                let sides = &mut self.tuning.before_after.explain;
                sides.received(key, result.map(|s| *s));
            }
            Response::CompareExplainProgress {
                key,
                side,
                done,
                total,
            } => self
                .tuning
                .before_after
                .explain
                .progress(&key, side, done, total),
            Response::CompareImportance { source, result } => {
                let importance = &mut self.tuning.before_after.importance;
                importance.finished(source, result.map(|s| *s));
            }
            Response::CompareImportanceProgress { side, done, total } => {
                let importance = &mut self.tuning.before_after.importance;
                importance.progress(side, done, total);
            }
            Response::Heads { source, result } => self.heads.finished(source, result.map(|a| *a)),
            Response::HeadsProgress { tuned, done, total } => {
                self.heads.progress(tuned, done, total)
            }
            Response::Crashed { message } => self.thread_error = Some(message),
            Response::Restarted { message } => self.worker_restarted(message),
        }
    }

    fn model_loaded(&mut self, info: crate::ui::worker::ModelInfo) {
        self.inspect_model_loaded(&info);
        self.settings.model = Some(info.spec.clone());
        self.settings.selection.fit(info.layers, info.heads);
        let sent = self.startup.model_loaded();
        if let Some(head) = sent.head {
            let sel = &mut self.settings.selection;
            sel.heads_on.iter_mut().for_each(|on| *on = true);
            sel.isolate_head(head.min(info.heads.saturating_sub(1)));
        }
        self.status = ModelStatus::Ready(info);
        self.set_analysis(None);
        self.explain.model_changed();
        self.heads.models_changed();
        self.data_view.models_changed();
        self.tuning.before_after.models_changed();
        if let Some(dir) = sent.tuned {
            self.worker.send(Request::LoadTuned { dir: Some(dir) });
        }
        if sent.preview {
            self.tuning
                .load_data(&self.settings.train, &mut self.worker, true);
        }
        self.request_analysis();
    }

    fn tuned_loaded(&mut self, info: TunedInfo) {
        self.startup.answered(Answer::Tuned);
        let t = &mut self.tuning;
        let new_dir = t.tuned.as_ref().is_none_or(|old| old.dir != info.dir);
        // The run just watched keeps its live curves and totals; another
        // directory shows the run its report describes.
        let watched = t.run.output.as_ref() == Some(&info.dir);
        if new_dir && !t.training() && !watched {
            if let Some(report) = &info.report {
                t.run = RunState::from_report(report, info.dir.clone());
            }
        }
        t.message = Some(format!("tuned model: {}", info.dir.display()));
        t.before_after.models_changed();
        self.heads.models_changed();
        self.data_view.models_changed();
        self.settings.train.tuned_path = info.dir.display().to_string();
        t.tuned = Some(info);
        self.request_analysis();
    }

    /// A fresh worker has no model: load again what was loaded (or loading).
    fn worker_restarted(&mut self, message: String) {
        self.thread_error = Some(message);
        let spec = match &self.status {
            ModelStatus::Ready(info) => info.spec.clone(),
            ModelStatus::Loading(spec) => spec.clone(),
            ModelStatus::None | ModelStatus::Failed { .. } => return,
        };
        if let Some(tuned) = &self.tuning.tuned {
            self.startup.reopen_tuned(tuned.dir.clone());
        }
        self.load_model(spec);
    }
}
