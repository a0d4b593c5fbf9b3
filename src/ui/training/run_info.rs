//! What an app run records in its `run.json`: everything needed to restart
//! it, in the shape the CLI writes (so `bertscope finetune --resume` continues
//! a run started in the app, and the app resumes one started by the CLI).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::Columns;
use crate::device::DeviceChoice;
use crate::train::{run_dir, TrainConfig};
use crate::ui::training::partial;
use crate::ui::training::worker::{DevSource, TrainJob};
use crate::write_guard;

/// A run's `run.json` (bertscope's mark is added by `run_dir::create`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub base_model: PathBuf,
    pub train: PathBuf,
    pub dev: Option<PathBuf>,
    pub dev_fraction: Option<f64>,
    pub output: PathBuf,
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub keep_epochs: bool,
    pub config: TrainConfig,
    pub data: DataColumns,
}

/// How the data files are read (the CLI's data flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataColumns {
    pub text_a_column: String,
    pub text_b_column: Option<String>,
    pub label_column: String,
    pub id_column: String,
    /// One character, or `\t` / `tab`; `None`: by extension.
    pub delimiter: Option<String>,
    pub skip_bad_rows: bool,
}

impl RunInfo {
    /// What `job` records.
    pub fn of(job: &TrainJob) -> Self {
        let (dev, dev_fraction) = match &job.dev {
            DevSource::None => (None, None),
            DevSource::File(path) => (Some(path.clone()), None),
            DevSource::Fraction(f) => (None, Some(*f)),
        };
        RunInfo {
            base_model: job.base_dir.clone(),
            train: job.train_path.clone(),
            dev,
            dev_fraction,
            output: job.output.clone(),
            overwrite: false,
            keep_epochs: job.keep_epochs,
            config: job.config.clone(),
            data: DataColumns {
                text_a_column: job.columns.text_a.clone(),
                text_b_column: job.columns.text_b.clone(),
                label_column: job.columns.label.clone(),
                id_column: job.columns.id.clone(),
                delimiter: job.delimiter.map(|d| {
                    if d == b'\t' {
                        "\\t".to_string()
                    } else {
                        char::from(d).to_string()
                    }
                }),
                // The app always skips bad rows (and lists them).
                skip_bad_rows: true,
            },
        }
    }

    /// The job that continues this run on `device`.
    pub fn resume_job(&self, device: DeviceChoice) -> TrainJob {
        let dev = match (&self.dev, self.dev_fraction) {
            (Some(path), _) => DevSource::File(path.clone()),
            (None, Some(f)) if f > 0.0 => DevSource::Fraction(f),
            _ => DevSource::None,
        };
        let d = &self.data;
        TrainJob {
            base_dir: self.base_model.clone(),
            train_path: self.train.clone(),
            dev,
            columns: Columns {
                text_a: d.text_a_column.clone(),
                text_b: d.text_b_column.clone(),
                label: d.label_column.clone(),
                id: d.id_column.clone(),
            },
            delimiter: match d.delimiter.as_deref() {
                Some("\\t") | Some("tab") => Some(b'\t'),
                Some(s) if s.len() == 1 => s.bytes().next(),
                _ => None,
            },
            config: self.config.clone(),
            device,
            output: self.output.clone(),
            keep_epochs: self.keep_epochs,
            resume: true,
        }
    }

    /// The `run.json` of the run directory `partial`, once it is shown to be
    /// bertscope's (see `partial::check`) and to belong to the output beside
    /// it (a run.json naming another output is refused: resuming would write there).
    pub fn read(partial: &Path) -> Result<RunInfo, String> {
        partial::check(partial).map_err(|why| {
            format!(
                "{}: is not a bertscope run directory ({why})",
                partial.display()
            )
        })?;
        let file = partial.join(run_dir::RUN_FILE);
        let text = crate::error::read_to_string(&file).map_err(|e| e.to_string())?;
        let info: RunInfo = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a run this bertscope can resume: {e}",
                file.display()
            )
        })?;
        let expected = run_dir::partial_path(&info.output);
        if write_guard::resolve(&expected) != write_guard::resolve(partial) {
            return Err(format!(
                "{}: this run writes to {}; its state must be in {}",
                partial.display(),
                info.output.display(),
                expected.display()
            ));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(output: &Path) -> TrainJob {
        TrainJob {
            base_dir: "/models/bge-small-en-v1.5".into(),
            train_path: "/data/train.tsv".into(),
            dev: DevSource::Fraction(0.2),
            columns: Columns {
                text_a: "title1_en".into(),
                text_b: Some("title2_en".into()),
                label: "label".into(),
                id: "id".into(),
            },
            delimiter: Some(b'\t'),
            config: TrainConfig {
                epochs: 5,
                lr: 1e-4,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Cpu,
            output: output.to_path_buf(),
            keep_epochs: true,
            resume: false,
        }
    }

    #[test]
    fn a_run_json_gives_back_the_job_as_a_resume() {
        let tmp = tempfile::tempdir().unwrap();
        let output = tmp.path().join("bge-small-en-v1.5-17");
        let partial = run_dir::partial_path(&output);
        let info = RunInfo::of(&job(&output));
        run_dir::create(&partial, &serde_json::to_value(&info).unwrap()).unwrap();

        // The CLI's shape: its `Plan` fields, by name.
        let text = std::fs::read_to_string(partial.join("run.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "base_model",
            "train",
            "dev_fraction",
            "output",
            "config",
            "data",
        ] {
            assert!(value.get(key).is_some(), "{key} missing: {text}");
        }
        assert_eq!(value["data"]["text_b_column"], "title2_en");

        let read = RunInfo::read(&partial).unwrap();
        assert_eq!(read, info);
        let resumed = read.resume_job(DeviceChoice::Cpu);
        let original = job(&output);
        assert!(resumed.resume);
        assert_eq!(resumed.dev, original.dev);
        assert_eq!(resumed.columns, original.columns);
        assert_eq!(resumed.delimiter, Some(b'\t'));
        assert_eq!(resumed.config, original.config);
        assert_eq!(resumed.partial(), partial);
    }

    #[test]
    fn a_run_json_naming_another_output_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("run.partial");
        let elsewhere = RunInfo::of(&job(&tmp.path().join("other")));
        run_dir::create(&partial, &serde_json::to_value(&elsewhere).unwrap()).unwrap();
        let refused = RunInfo::read(&partial).unwrap_err();
        assert!(refused.contains("its state must be in"), "{refused}");
        // And a folder that is not a run at all.
        let mine = tmp.path().join("mine.partial");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("notes.txt"), "x").unwrap();
        assert!(RunInfo::read(&mine)
            .unwrap_err()
            .contains("not a bertscope run directory"));
    }
}
