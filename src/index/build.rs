//! Filling an index: the data's rows in file-order chunks, each chunk run
//! through the dataset pass's batched forward (no attention kept), its
//! vectors rounded to f16 and appended, then `index.json` moved on. A build
//! that stops (cancelled, killed) resumes at the first unwritten chunk.

use std::io::{Seek, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::format::{self, DataSource, Manifest, ModelSource, RowRecord, TokenRecord};
use crate::data::Dataset;
use crate::dataset::pass::{hidden_pass, BatchHidden};
use crate::dataset::PassLimits;
use crate::engine::LoadedModel;
use crate::error::{BertError, Op, Result};
use crate::model::precision::{self, Precision};
use crate::tokenize::Located;
use crate::write_guard::{self, Protected};

/// Bytes of vectors one chunk holds in memory at most.
const CHUNK_BYTES: usize = 256 << 20;
/// Rows a chunk holds at most (and at least, when they fit).
const CHUNK_ROWS: (usize, usize) = (16, 4096);

/// What to store, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    /// The data file and columns the rows come from (recorded in the index).
    pub source: DataSource,
    /// Layers to store (`hidden_states` numbering); `None`: all.
    pub layers: Option<Vec<usize>>,
    pub limits: PassLimits,
    /// Replace an existing index (of anything) instead of resuming or refusing.
    pub overwrite: bool,
    /// Rows written (and synced) between commits; `None`: as many as fit
    /// in memory's budget.
    pub chunk_rows: Option<usize>,
    /// The model's fingerprint when the caller has computed it already
    /// (hashing its weights once is enough); `None`: computed here.
    pub model_fingerprint: Option<String>,
    /// The model's products: fp32, or bf16 operands with f32 sums.
    pub precision: Precision,
}

/// How a build went.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Manifest,
    /// Rows that were already written when this build started.
    pub resumed_at: usize,
}

/// Build (or resume) the index of `data`'s rows at `output`.
/// `progress(done, total)` in rows; `cancel` stops within a batch, and what
/// was written before stays for the next build to resume.
pub fn build(
    model: &LoadedModel,
    data: &Dataset,
    output: &Path,
    protected: &Protected,
    options: &BuildOptions,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Built> {
    options.precision.check(model.model.device())?;
    let wanted = wanted_layers(options.layers.as_deref(), model.config().num_layers())?;
    let max_length = options.limits.length_for(model)?;
    let rows = options.limits.rows(data);
    if rows.is_empty() {
        return Err(BertError::file(&data.path, "no rows to index"));
    }
    let fresh = Manifest {
        format: format::FORMAT.into(),
        version: format::VERSION,
        model: ModelSource {
            name: model.name.clone(),
            dir: write_guard::absolute(&model.dir),
            fingerprint: match &options.model_fingerprint {
                Some(known) => known.clone(),
                None => super::fingerprint::of_model(&model.dir)?,
            },
            hidden: model.config().hidden_size(),
            num_layers: model.config().num_layers(),
        },
        data: options.source.clone(),
        layers: wanted,
        max_length,
        dtype: "f16".into(),
        precision: options.precision,
        rows_total: rows.len(),
        rows: 0,
        tokens: 0,
        rows_bytes: 0,
        complete: false,
    };
    let mut manifest = prepare_output(output, protected, fresh, options.overwrite)?;
    let resumed_at = manifest.rows;
    let mut files = Files::open(output, &manifest)?;
    progress(manifest.rows, manifest.rows_total);
    while manifest.rows < manifest.rows_total {
        let start = manifest.rows;
        let per_row = max_length * manifest.bytes_per_token();
        let take = options
            .chunk_rows
            .unwrap_or_else(|| (CHUNK_BYTES / per_row.max(1)).clamp(CHUNK_ROWS.0, CHUNK_ROWS.1))
            .max(1);
        let end = (start + take).min(manifest.rows_total);
        let chunk = &rows[start..end];
        let inputs: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|e| (e.text_a.as_str(), e.text_b.as_deref()))
            .collect();
        let located = model.tokenizer.encode_batch_located(&inputs, max_length)?;
        let vectors = precision::scoped(manifest.precision, || {
            run_chunk(model, &manifest, &located, start, progress, cancel)
        })?;
        let records: Vec<RowRecord> = chunk
            .iter()
            .enumerate()
            .map(|(i, e)| RowRecord {
                row: start + i,
                line: e.line,
                text_a: e.text_a.clone(),
                text_b: e.text_b.clone(),
                label: e.label.clone(),
            })
            .collect();
        let tokens = token_records(chunk, &located, start);
        manifest.rows_bytes += files.append(&records, &tokens, &vectors)?;
        manifest.rows = end;
        manifest.tokens += tokens.len();
        manifest.complete = end == manifest.rows_total;
        manifest.write(output)?;
    }
    Ok(Built {
        manifest,
        resumed_at,
    })
}

/// Sorted, distinct, and within `0..=layers`.
fn wanted_layers(layers: Option<&[usize]>, num_layers: usize) -> Result<Vec<usize>> {
    let mut wanted: Vec<usize> = match layers {
        None => (0..=num_layers).collect(),
        Some(list) => list.to_vec(),
    };
    wanted.sort_unstable();
    wanted.dedup();
    if let Some(&bad) = wanted.iter().find(|&&l| l > num_layers) {
        return Err(BertError::Input(format!(
            "--layers: layer {bad} does not exist; the model has layers 0 (the embeddings) to {num_layers}"
        )));
    }
    if wanted.is_empty() {
        return Err(BertError::Input("--layers names no layer".into()));
    }
    Ok(wanted)
}

/// Check `output` and return the manifest to continue from: a new index,
/// or the one there when it is the same build stopped part-way.
fn prepare_output(
    output: &Path,
    protected: &Protected,
    fresh: Manifest,
    overwrite: bool,
) -> Result<Manifest> {
    match write_guard::check_output_dir(output, protected, false) {
        Ok(()) => {}
        Err(BertError::OutputExists { .. }) => {
            let existing = format::ours(output).map_err(|why| {
                BertError::file(
                    output,
                    format!("is not a bertscope index ({why}); nothing was replaced"),
                )
            })?;
            if overwrite {
                remove_index_files(output)?;
            } else if existing.complete && same_build(&existing, &fresh) {
                return Err(BertError::OutputExists {
                    path: output.to_path_buf(),
                    message: "is already a complete index of this data and model".into(),
                });
            } else if !same_build(&existing, &fresh) {
                return Err(BertError::OutputExists {
                    path: output.to_path_buf(),
                    message: format!(
                        "is an index of another build ({}); nothing was replaced",
                        differences(&existing, &fresh)
                    ),
                });
            } else {
                return Ok(existing);
            }
        }
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(output).map_err(|e| BertError::io(Op::Create, output, &e))?;
    fresh.write(output)?;
    Ok(fresh)
}

fn same_build(a: &Manifest, b: &Manifest) -> bool {
    differences(a, b).is_empty()
}

/// What differs between two builds' settings, for the refusal.
fn differences(old: &Manifest, new: &Manifest) -> String {
    let mut out = Vec::new();
    if old.model.fingerprint != new.model.fingerprint {
        out.push(format!(
            "model {} there, {} now",
            old.model.name, new.model.name
        ));
    }
    if old.data.path != new.data.path {
        out.push(format!(
            "data {} there, {} now",
            old.data.path.display(),
            new.data.path.display()
        ));
    } else if old.data.digest != new.data.digest {
        out.push("the data file changed since".to_string());
    } else if old.data != new.data {
        out.push("other columns".to_string());
    }
    if old.layers != new.layers {
        out.push(format!(
            "layers {:?} there, {:?} now",
            old.layers, new.layers
        ));
    }
    if old.precision != new.precision {
        out.push(format!(
            "--precision {} there, {} now",
            old.precision.name(),
            new.precision.name()
        ));
    }
    if old.max_length != new.max_length {
        out.push(format!(
            "max length {} there, {} now",
            old.max_length, new.max_length
        ));
    }
    if old.rows_total != new.rows_total {
        out.push(format!(
            "{} rows there, {} now",
            old.rows_total, new.rows_total
        ));
    }
    out.join("; ")
}

fn remove_index_files(dir: &Path) -> Result<()> {
    let listing = dir
        .read_dir()
        .map_err(|e| BertError::io(Op::List, dir, &e))?;
    for entry in listing {
        let path = entry.map_err(|e| BertError::io(Op::List, dir, &e))?.path();
        std::fs::remove_file(&path).map_err(|e| BertError::io(Op::Remove, &path, &e))?;
    }
    Ok(())
}

/// One chunk's vectors, `[layer][token][hidden]` as f16, tokens in row order.
fn run_chunk(
    model: &LoadedModel,
    manifest: &Manifest,
    located: &[Located],
    first_row: usize,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Vec<Vec<f16>>> {
    let hidden = manifest.model.hidden;
    // Where each row's first stored token goes.
    let mut offsets = Vec::with_capacity(located.len() + 1);
    offsets.push(0);
    for l in located {
        let kept = l.special.iter().filter(|&&s| !s).count();
        offsets.push(offsets.last().copied().unwrap_or(0) + kept);
    }
    let total = offsets.last().copied().unwrap_or(0);
    let mut vectors: Vec<Vec<f16>> = manifest
        .layers
        .iter()
        .map(|_| vec![f16::ZERO; total * hidden])
        .collect();
    let mut reduce = |batch: &BatchHidden| {
        let slot = manifest
            .layers
            .iter()
            .position(|&l| l == batch.layer)
            .unwrap_or(0);
        let out = &mut vectors[slot];
        for (b, &row) in batch.rows.iter().enumerate() {
            let mut at = offsets[row];
            for (t, &special) in located[row].special.iter().enumerate() {
                if special {
                    continue;
                }
                out[at * hidden..(at + 1) * hidden].convert_from_f32_slice(batch.token(b, t));
                at += 1;
            }
        }
        Ok(())
    };
    let encoded: Vec<_> = located.iter().map(|l| &l.encoded).collect();
    let mut chunk_progress =
        |done: usize, _: usize| progress(first_row + done, manifest.rows_total);
    let pad = model.tokenizer.pad_id();
    hidden_pass(
        &model.model,
        pad,
        &encoded,
        &manifest.layers,
        &mut reduce,
        &mut chunk_progress,
        cancel,
    )?;
    Ok(vectors)
}

/// The chunk's token records, with byte offsets turned into characters.
fn token_records(
    chunk: &[crate::data::Example],
    located: &[Located],
    first_row: usize,
) -> Vec<TokenRecord> {
    let mut out = Vec::new();
    for (i, (example, l)) in chunk.iter().zip(located).enumerate() {
        let chars_a = char_index(&example.text_a);
        let chars_b = example
            .text_b
            .as_deref()
            .map(char_index)
            .unwrap_or_default();
        for (t, &special) in l.special.iter().enumerate() {
            if special {
                continue;
            }
            let segment = l.encoded.token_type_ids.get(t).copied().unwrap_or(0).min(1) as u8;
            let table = if segment == 0 { &chars_a } else { &chars_b };
            let (s, e) = l.offsets[t];
            let at = |byte: usize| table.get(byte).copied().unwrap_or(0);
            out.push(TokenRecord {
                row: (first_row + i) as u32,
                token_index: t as u16,
                segment,
                chars: (at(s), at(e)),
            });
        }
    }
    out
}

/// The character index at each byte position of `text` (and its end).
fn char_index(text: &str) -> Vec<u32> {
    let mut table = vec![0u32; text.len() + 1];
    let mut count = 0u32;
    for (byte, c) in text.char_indices() {
        for slot in &mut table[byte..byte + c.len_utf8()] {
            *slot = count;
        }
        count += 1;
    }
    table[text.len()] = count;
    table
}

/// The index's data files, opened for appending after what the manifest
/// counts (anything past it, from a build that was killed, is cut off).
struct Files {
    rows: std::fs::File,
    tokens: std::fs::File,
    layers: Vec<std::fs::File>,
    paths: Vec<std::path::PathBuf>,
}

impl Files {
    fn open(dir: &Path, manifest: &Manifest) -> Result<Files> {
        let vector_bytes = (manifest.tokens * manifest.model.hidden * 2) as u64;
        let open = |name: &str, len: u64| -> Result<(std::fs::File, std::path::PathBuf)> {
            let path = dir.join(name);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| BertError::io(Op::Create, &path, &e))?;
            let have = file
                .metadata()
                .map_err(|e| BertError::io(Op::Read, &path, &e))?
                .len();
            if have < len {
                return Err(BertError::file(
                    &path,
                    format!("holds {have} bytes where index.json promises {len}; pass --overwrite to build the index again"),
                ));
            }
            file.set_len(len)
                .and_then(|()| file.seek(std::io::SeekFrom::End(0)).map(|_| ()))
                .map_err(|e| BertError::io(Op::Write, &path, &e))?;
            Ok((file, path))
        };
        let (rows, rows_path) = open(format::ROWS, manifest.rows_bytes)?;
        let token_bytes = (manifest.tokens * format::TOKEN_RECORD) as u64;
        let (tokens, tokens_path) = open(format::TOKENS, token_bytes)?;
        let mut paths = vec![rows_path, tokens_path];
        let mut layers = Vec::new();
        for &layer in &manifest.layers {
            let (file, path) = open(&format::layer_file(layer), vector_bytes)?;
            layers.push(file);
            paths.push(path);
        }
        Ok(Files {
            rows,
            tokens,
            layers,
            paths,
        })
    }

    /// Append one chunk and sync it; the bytes added to `rows.jsonl`.
    fn append(
        &mut self,
        rows: &[RowRecord],
        tokens: &[TokenRecord],
        vectors: &[Vec<f16>],
    ) -> Result<u64> {
        let mut text = Vec::new();
        for r in rows {
            serde_json::to_writer(&mut text, r)
                .map_err(|e| BertError::file(&self.paths[0], format!("cannot serialise: {e}")))?;
            text.push(b'\n');
        }
        let token_bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_bytes()).collect();
        let mut writes: Vec<(&mut std::fs::File, &[u8])> =
            vec![(&mut self.rows, &text), (&mut self.tokens, &token_bytes)];
        for (file, v) in self.layers.iter_mut().zip(vectors) {
            writes.push((file, bytemuck::cast_slice(v)));
        }
        for ((file, bytes), path) in writes.into_iter().zip(&self.paths) {
            file.write_all(bytes)
                .and_then(|()| file.sync_data())
                .map_err(|e| BertError::io(Op::Write, path, &e))?;
        }
        Ok(text.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_index_counts_characters_not_bytes() {
        let t = char_index("a胖b");
        assert_eq!(t, vec![0, 1, 1, 1, 2, 3]);
    }

    #[test]
    fn layers_are_checked_sorted_and_distinct() {
        assert_eq!(wanted_layers(None, 2).unwrap(), vec![0, 1, 2]);
        assert_eq!(wanted_layers(Some(&[2, 0, 2]), 6).unwrap(), vec![0, 2]);
        let err = wanted_layers(Some(&[7]), 6).unwrap_err().to_string();
        assert!(
            err.contains("layer 7") && err.contains("0 (the embeddings) to 6"),
            "{err}"
        );
    }
}
