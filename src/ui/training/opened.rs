//! The opened run's hyperparameters: when the tuned model changes, its
//! `training_args.json` is read on a background thread and its
//! hyperparameters replace the form's (which are kept, to restore), so the
//! form beside a run shows what trained it.

use std::path::{Path, PathBuf};

use crate::train::TrainConfig;
use crate::ui::support::job::Job;
use crate::ui::training::form::TrainForm;

/// A run whose hyperparameters are in the form.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedRun {
    pub dir: PathBuf,
    /// The run's folder name.
    pub name: String,
    pub config: TrainConfig,
    /// The form's hyperparameters before the run's replaced them.
    pub stashed: Option<TrainConfig>,
}

/// Where reading the tuned model's hyperparameters stands.
#[derive(Default)]
pub enum Opened {
    /// No tuned model.
    #[default]
    None,
    Reading {
        dir: PathBuf,
        job: Job<Result<TrainConfig, String>>,
    },
    Shown(Box<OpenedRun>),
    /// The tuned model has no hyperparameters bertscope can read.
    Unknown {
        dir: PathBuf,
    },
}

impl Opened {
    fn dir(&self) -> Option<&Path> {
        match self {
            Opened::None => None,
            Opened::Reading { dir, .. } | Opened::Unknown { dir } => Some(dir),
            Opened::Shown(run) => Some(&run.dir),
        }
    }

    /// Follow the tuned model (`tuned`): read a new one's hyperparameters,
    /// and put them in `form` once read.
    pub fn poll(&mut self, tuned: Option<&Path>, form: &mut TrainForm) {
        if tuned != self.dir() {
            *self = match tuned {
                None => Opened::None,
                Some(dir) => {
                    let file = dir.join("training_args.json");
                    Opened::Reading {
                        dir: dir.to_path_buf(),
                        job: Job::spawn("training args", move || read_config(&file), || {}),
                    }
                }
            };
            return;
        }
        let Opened::Reading { dir, job } = self else {
            return;
        };
        let Some(result) = job.poll() else {
            return;
        };
        let dir = dir.clone();
        *self = match result.and_then(|r| r) {
            Ok(config) => {
                let stashed = (!form.has_hyperparameters(&config)).then(|| form.config());
                form.set_hyperparameters(&config);
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Opened::Shown(Box::new(OpenedRun {
                    dir,
                    name,
                    config,
                    stashed,
                }))
            }
            Err(_) => Opened::Unknown { dir },
        };
    }

    pub fn shown(&self) -> Option<&OpenedRun> {
        match self {
            Opened::Shown(run) => Some(run),
            _ => None,
        }
    }

    pub fn reading(&self) -> bool {
        matches!(self, Opened::Reading { .. })
    }

    /// Put the run's hyperparameters in the form (again); false without a run.
    pub fn apply_to(&self, form: &mut TrainForm) -> bool {
        match self.shown() {
            Some(run) => {
                form.set_hyperparameters(&run.config);
                true
            }
            None => false,
        }
    }

    /// Give the form back the hyperparameters the run's replaced.
    pub fn restore(&mut self, form: &mut TrainForm) {
        if let Opened::Shown(run) = self {
            if let Some(stashed) = run.stashed.take() {
                form.set_hyperparameters(&stashed);
            }
        }
    }
}

fn read_config(file: &Path) -> Result<TrainConfig, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn settle(opened: &mut Opened, dir: &Path, form: &mut TrainForm) {
        let start = Instant::now();
        opened.poll(Some(dir), form);
        while opened.reading() {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(2));
            opened.poll(Some(dir), form);
        }
    }

    #[test]
    fn a_runs_hyperparameters_replace_the_forms_until_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let run = TrainConfig {
            epochs: 7,
            batch_size: 4,
            lr: 3e-4,
            seed: 9,
            max_steps: Some(50),
            ..TrainConfig::default()
        };
        let mut args = serde_json::to_value(&run).unwrap();
        args["base_model"] = "/models/m".into();
        args["written_by"] = "bertscope test".into();
        std::fs::write(tmp.path().join("training_args.json"), args.to_string()).unwrap();

        let mut form = TrainForm::default();
        let mine = form.config();
        let mut opened = Opened::default();
        settle(&mut opened, tmp.path(), &mut form);
        let shown = opened.shown().expect("read");
        assert_eq!(shown.config, run);
        assert_eq!(form.config(), run);
        assert_eq!((form.epochs, form.max_steps), (7, 50));

        form.lr = 1.0; // edited, then the run's again
        assert!(opened.apply_to(&mut form));
        assert_eq!(form.lr, 3e-4);
        opened.restore(&mut form);
        assert_eq!(form.config(), mine);

        // No training_args.json: nothing replaced.
        let other = tmp.path().join("plain");
        std::fs::create_dir(&other).unwrap();
        settle(&mut opened, &other, &mut form);
        assert!(matches!(opened, Opened::Unknown { .. }));
        assert_eq!(form.config(), mine);
    }
}
