//! safetensors files written a few megabytes at a time, looking at a cancel
//! flag between chunks, so that a cancel lands within a fraction of a second
//! even in the middle of BERT-base's 1.3 GB of weights and AdamW moments.
//!
//! The bytes are those `safetensors::serialize` writes (a test pins them): the
//! header's length as a little-endian `u64`; the JSON header (`__metadata__`,
//! then every tensor's dtype, shape and data offsets, by descending dtype and
//! then by name), padded with spaces to a multiple of 8; then each tensor's
//! data in that order. The header is built with the crate's own `Metadata`.
//! The file is written beside `path` and renamed into place: a cancelled or
//! failed write removes it and leaves `path` as it was.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use safetensors::tensor::{Metadata, TensorInfo, View};

use crate::error::{BertError, Op, Result};
use crate::write_guard;

/// Bytes written between two looks at the cancel flag.
pub const CHUNK: usize = 4 << 20;

/// The largest header the safetensors crate writes (and reads).
const MAX_HEADER: usize = 100_000_000;

/// Write `tensors` with `metadata` to `path` as safetensors.
/// `BertError::Cancelled` as soon as `cancel` is set, with `path` untouched.
pub fn write<V: View>(
    tensors: &[(String, V)],
    metadata: &HashMap<String, String>,
    path: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    write_until(tensors, metadata, path, &mut || {
        cancel.load(Ordering::Relaxed)
    })
}

/// [`write`], asking `stop` before every chunk (and before the file is made).
fn write_until<V: View>(
    tensors: &[(String, V)],
    metadata: &HashMap<String, String>,
    path: &Path,
    stop: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let order = in_file_order(tensors);
    let header = header(&order, metadata)
        .map_err(|why| BertError::file(path, format!("cannot write: {why}")))?;
    if stop() {
        return Err(BertError::Cancelled);
    }
    write_guard::via_temp_sibling(path, |file| write_body(file, &header, &order, stop, path))
}

/// The tensors in the order the safetensors crate lays them out: by
/// descending dtype (largest alignment first), then by name.
fn in_file_order<V: View>(tensors: &[(String, V)]) -> Vec<&(String, V)> {
    let mut order: Vec<&(String, V)> = tensors.iter().collect();
    order.sort_by(|(left_name, left), (right_name, right)| {
        right
            .dtype()
            .cmp(&left.dtype())
            .then(left_name.cmp(right_name))
    });
    order
}

/// The JSON header, padded with spaces to a multiple of 8 bytes.
fn header<V: View>(
    order: &[&(String, V)],
    metadata: &HashMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let mut offset = 0;
    let infos = order
        .iter()
        .map(|(name, tensor)| {
            let start = offset;
            offset += tensor.data_len();
            let info = TensorInfo {
                dtype: tensor.dtype(),
                shape: tensor.shape().to_vec(),
                data_offsets: (start, offset),
            };
            (name.clone(), info)
        })
        .collect();
    let metadata = Metadata::new(Some(metadata.clone()), infos).map_err(|e| e.to_string())?;
    let mut header = serde_json::to_string(&metadata)
        .map_err(|e| e.to_string())?
        .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    if header.len() > MAX_HEADER {
        return Err(format!("the header would take {} bytes", header.len()));
    }
    Ok(header)
}

/// The length, the header and every tensor's data, chunk by chunk.
fn write_body<V: View>(
    mut file: File,
    header: &[u8],
    order: &[&(String, V)],
    stop: &mut dyn FnMut() -> bool,
    path: &Path,
) -> Result<()> {
    let io = |e: std::io::Error| BertError::io(Op::Write, path, &e);
    file.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    file.write_all(header).map_err(io)?;
    for (_, tensor) in order {
        let data = tensor.data();
        for chunk in data.chunks(CHUNK) {
            if stop() {
                return Err(BertError::Cancelled);
            }
            file.write_all(chunk).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn tensor(shape: &[usize], seed: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| seed + i as f32 * 0.25).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// Tensors of several shapes and two dtypes, named out of order.
    fn tensors() -> Vec<(String, Tensor)> {
        let counters = Tensor::from_slice(&[3u32, 7], 2, &Device::Cpu).unwrap();
        vec![
            ("z.weight".into(), tensor(&[3, 5], 1.0)),
            ("step".into(), counters),
            ("a.bias".into(), tensor(&[7], -2.0)),
            ("m.scalar".into(), tensor(&[], 4.5)),
            ("empty".into(), tensor(&[0, 4], 0.0)),
            ("b.big".into(), tensor(&[2, 3, 700_000], 0.5)),
        ]
    }

    fn pt() -> HashMap<String, String> {
        HashMap::from([("format".to_string(), "pt".to_string())])
    }

    #[test]
    fn writes_the_bytes_safetensors_serialize_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        let tensors = tensors();
        let never = AtomicBool::new(false);
        write(&tensors, &pt(), &path, &never).unwrap();
        let expected = safetensors::serialize(tensors.iter().cloned(), Some(pt())).unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written.len(), expected.len());
        assert!(written == expected, "the bytes differ from the crate's");
        // Single tensors, and no tensor at all.
        for one in [&tensors[..1], &tensors[4..5], &[]] {
            write(one, &pt(), &path, &never).unwrap();
            let expected = safetensors::serialize(one.iter().cloned(), Some(pt())).unwrap();
            assert!(std::fs::read(&path).unwrap() == expected);
        }
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["model.safetensors"], "no temporary file left");
    }

    #[test]
    fn a_cancel_mid_write_leaves_the_old_file_and_no_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        std::fs::write(&path, "the old checkpoint").unwrap();
        let tensors = tensors();
        for after in [0, 1, 3] {
            let mut asked = 0;
            let mut stop = || {
                asked += 1;
                asked > after
            };
            let result = write_until(&tensors, &pt(), &path, &mut stop);
            assert!(matches!(result, Err(BertError::Cancelled)), "{result:?}");
            assert_eq!(std::fs::read(&path).unwrap(), b"the old checkpoint");
            assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        }
        std::fs::remove_file(&path).unwrap();
        let set = AtomicBool::new(true);
        let result = write(&tensors, &pt(), &path, &set);
        assert!(matches!(result, Err(BertError::Cancelled)));
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_flag_is_read_every_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        let tensors = tensors();
        let data: usize = tensors.iter().map(|(_, t)| t.data_len()).sum();
        let mut asked = 0;
        write_until(&tensors, &pt(), &path, &mut || {
            asked += 1;
            false
        })
        .unwrap();
        assert!(data > 4 * CHUNK);
        assert!(
            asked > data / CHUNK,
            "{asked} looks at the flag for {data} bytes"
        );
    }
}
