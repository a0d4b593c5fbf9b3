//! Batch prediction over a TSV/CSV: one `id,label,score` row per input.

use std::path::Path;

use crate::data::Dataset;
use crate::engine::LoadedModel;
use crate::error::Result;
use crate::write_guard;
use crate::Inspect;

/// One prediction row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub id: String,
    pub label: String,
    pub score: f32,
}

/// Classify every example in batches; `progress(done, total)` after each batch.
pub fn predict(
    model: &LoadedModel,
    data: &Dataset,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Prediction>> {
    let mut out = Vec::with_capacity(data.examples.len());
    let total = data.examples.len();
    for (chunk_index, chunk) in data.examples.chunks(batch_size.max(1)).enumerate() {
        let rows = chunk
            .iter()
            .map(|e| model.encode(&e.text_a, e.text_b.as_deref()))
            .collect::<Result<Vec<_>>>()?;
        let scores = model.classify_batch(&rows, &Inspect::default())?;
        for (i, (example, probs)) in chunk.iter().zip(scores).enumerate() {
            let best = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(c, _)| c)
                .unwrap_or(0);
            out.push(Prediction {
                id: example
                    .id
                    .clone()
                    .unwrap_or_else(|| (chunk_index * batch_size.max(1) + i + 1).to_string()),
                label: model.config().labels.get(best).cloned().unwrap_or_default(),
                score: probs.get(best).copied().unwrap_or(0.0),
            });
        }
        progress(out.len(), total);
    }
    Ok(out)
}

/// The columns of a predictions file: `<id_header>,<label_header>[,score]`.
/// The tutorial's Kaggle submission is `Id,Category` with no score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLayout {
    /// The input's id column header (`id` when the input has none).
    pub id_header: String,
    pub label_header: String,
    /// Write the predicted class's probability as a third column.
    pub score: bool,
}

/// Write the predictions CSV through a temporary file and a rename (a crash
/// leaves the old file or the complete new one). Fields are quoted only
/// where needed and lines end in `\n`, as pandas' `to_csv` writes them.
pub fn write_csv(path: &Path, predictions: &[Prediction], layout: &CsvLayout) -> Result<()> {
    write_guard::write_file_atomically(path, |file| {
        let mut writer = csv::Writer::from_writer(file);
        let (id, label) = (layout.id_header.as_str(), layout.label_header.as_str());
        if layout.score {
            writer.write_record([id, label, "score"])?;
        } else {
            writer.write_record([id, label])?;
        }
        for p in predictions {
            if layout.score {
                let score = format!("{:.6}", p.score);
                writer.write_record([p.id.as_str(), p.label.as_str(), &score])?;
            } else {
                writer.write_record([p.id.as_str(), p.label.as_str()])?;
            }
        }
        writer.flush()
    })
}
