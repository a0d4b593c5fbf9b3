//! PyTorch zip checkpoints (`pytorch_model.bin` of torch >= 1.6): the pickle's
//! list of tensors, each checked against the storage entry it lies in before a
//! byte of tensor data is allocated, then read.
//!
//! The pickle runs on candle's reader after [`pickle_guard`](super::pickle_guard)
//! has bounded it; the tensor list is taken from the pickle here rather than by
//! `candle_core::pickle::read_pth_tensor_info`, whose arithmetic trusts the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use zip::ZipArchive;

use super::pickle_guard;
use crate::error::{BertError, Op, Result};

/// Largest `data.pkl` read: the pickle only lists tensors (BERT-base: 20 KB).
const MAX_PICKLE_BYTES: u64 = 16 << 20;
/// Most dimensions a tensor may have (BERT's have at most 2).
const MAX_RANK: usize = 8;

/// One tensor as the pickle describes it, checked against the archive.
#[derive(Debug, Clone)]
pub(super) struct PthTensor {
    pub name: String,
    view: View,
}

/// Where a tensor's data lies; tensors with equal views share it (tied weights).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct View {
    /// The zip entry of the storage, e.g. `archive/data/0`.
    entry: String,
    /// Byte offset of the tensor in its storage.
    offset: u64,
    bytes: u64,
    dtype: DType,
    shape: Vec<usize>,
    /// Stored column-major (a transposed tensor) rather than row-major.
    column_major: bool,
}

type Archive = ZipArchive<BufReader<File>>;

fn open_archive(file: &Path) -> Result<Archive> {
    let handle = File::open(file).map_err(|e| BertError::io(Op::Read, file, &e))?;
    ZipArchive::new(BufReader::new(handle)).map_err(|e| {
        BertError::file(
            file,
            format!(
                "not a PyTorch checkpoint of the zip format (torch >= 1.6; older ones are not supported): {e}"
            ),
        )
    })
}

/// The tensors of `file` whose names `wanted` accepts, every one checked to lie
/// within the storage it claims.
pub(super) fn list(file: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<PthTensor>> {
    let mut archive = open_archive(file)?;
    let (pickle_name, bytes) = read_pickle(file, &mut archive)?;
    let prefix = pickle_name.trim_end_matches(".pkl");
    let fail = |message: String| BertError::file(file, format!("{pickle_name}: {message}"));
    pickle_guard::check(&bytes).map_err(fail)?;
    let mut stack = Stack::empty();
    let corrupt = |e: candle_core::Error| fail(format!("corrupt pickle: {}", first_words(&e)));
    stack.read_loop(&mut bytes.as_slice()).map_err(corrupt)?;
    let root = stack.finalize().map_err(corrupt)?;
    let mut tensors = Vec::new();
    for (key, value) in state_dict(root).ok_or_else(|| fail("holds no state dict".into()))? {
        let Object::Unicode(name) = key else {
            continue;
        };
        if !wanted(&name) {
            continue;
        }
        let view = tensor_view(value, prefix).map_err(|m| BertError::weight(file, &name, m))?;
        if let Some(view) = view {
            tensors.push(PthTensor { name, view });
        }
    }
    check_claims(file, &mut archive, &tensors)?;
    Ok(tensors)
}

/// The start of an error's message: candle's pickle errors print whole objects.
fn first_words(err: &candle_core::Error) -> String {
    const MAX_CHARS: usize = 160;
    let text = err.to_string();
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The archive's `…/data.pkl`, refused when larger than [`MAX_PICKLE_BYTES`].
fn read_pickle(file: &Path, archive: &mut Archive) -> Result<(String, Vec<u8>)> {
    let name = archive
        .file_names()
        .filter_map(|name| name.ok())
        .find(|name| name.ends_with("data.pkl"))
        .map(|name| name.into_owned())
        .ok_or_else(|| BertError::file(file, "no data.pkl: not a PyTorch checkpoint"))?;
    let fail = |message: String| BertError::file(file, format!("{name}: {message}"));
    let entry = archive
        .by_name(&name)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if entry.size() > MAX_PICKLE_BYTES {
        return Err(fail(format!(
            "claims {} bytes, more than the {} MiB a tensor list needs",
            entry.size(),
            MAX_PICKLE_BYTES >> 20
        )));
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_PICKLE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    Ok((name, bytes))
}

/// The dict of `{name: tensor}`, unwrapped from a TorchScript module if need be.
fn state_dict(root: Object) -> Option<Vec<(Object, Object)>> {
    let root = match root {
        Object::Build { callable, args } => match *callable {
            Object::Reduce { callable, .. }
                if matches!(&*callable, Object::Class { module_name, class_name }
                    if module_name == "__torch__" && class_name == "Module") =>
            {
                *args
            }
            _ => return None,
        },
        other => other,
    };
    match root {
        Object::Dict(items) => Some(items),
        _ => None,
    }
}

fn is_class(object: &Object, module: &str, class: &str) -> bool {
    matches!(object, Object::Class { module_name, class_name }
        if module_name == module && class_name == class)
}

fn items(object: Object, what: &str, at_least: usize) -> std::result::Result<Vec<Object>, String> {
    match object {
        Object::Tuple(items) if items.len() >= at_least => Ok(items),
        _ => Err(format!(
            "{what}: expected a tuple of at least {at_least} items"
        )),
    }
}

/// Where a pickled tensor's data lies; `None` for values that are not tensors
/// (as `torch.load` would give them, and candle skips them).
fn tensor_view(value: Object, prefix: &str) -> std::result::Result<Option<View>, String> {
    let Object::Reduce { callable, args } = value else {
        return Ok(None);
    };
    let (callable, args) = match *callable {
        // _rebuild_from_type_v2(func, type, args, state)
        c if is_class(&c, "torch._tensor", "_rebuild_from_type_v2") => {
            let mut parts = items(*args, "_rebuild_from_type_v2 arguments", 3)?.into_iter();
            let func = parts.next().unwrap_or(Object::None);
            let args = parts.nth(1).unwrap_or(Object::None);
            (func, args)
        }
        // _rebuild_parameter(data, requires_grad, backward_hooks)
        c if is_class(&c, "torch._utils", "_rebuild_parameter") => {
            let mut parts = items(*args, "_rebuild_parameter arguments", 1)?.into_iter();
            match parts.next() {
                Some(Object::Reduce { callable, args }) => (*callable, *args),
                _ => return Ok(None),
            }
        }
        c => (c, *args),
    };
    if !is_class(&callable, "torch._utils", "_rebuild_tensor_v2") {
        return Ok(None);
    }
    rebuild_tensor_v2(args, prefix).map(Some)
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, …)`.
fn rebuild_tensor_v2(args: Object, prefix: &str) -> std::result::Result<View, String> {
    let mut parts = items(args, "_rebuild_tensor_v2 arguments", 4)?.into_iter();
    let (storage, offset, size, stride) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
            _ => return Err("_rebuild_tensor_v2 has too few arguments".into()),
        };
    let (key, dtype) = storage_of(storage)?;
    let offset = non_negative(offset, "storage offset")?;
    let shape = dims(size, "size")?;
    let stride = dims(stride, "stride")?;
    let column_major = layout(&shape, &stride)?;
    let dsize = dtype.size_in_bytes() as u64;
    let elems = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let (bytes, offset) = match (elems.checked_mul(dsize), offset.checked_mul(dsize)) {
        (Some(bytes), Some(offset)) if offset.checked_add(bytes).is_some() => (bytes, offset),
        _ => return Err(format!("shape {shape:?} at offset {offset} overflows")),
    };
    Ok(View {
        entry: format!("{prefix}/{key}"),
        offset,
        bytes,
        dtype,
        shape,
        column_major,
    })
}

/// The persistent id `('storage', torch.FloatStorage, key, location, numel)`.
fn storage_of(storage: Object) -> std::result::Result<(String, DType), String> {
    let Object::PersistentLoad(id) = storage else {
        return Err("storage is not a persistent id".into());
    };
    let mut parts = items(*id, "storage id", 5)?.into_iter();
    let class = parts.nth(1);
    let key = parts.next();
    let (Some(Object::Class { class_name, .. }), Some(Object::Unicode(key))) = (class, key) else {
        return Err("storage id has no storage type and key".into());
    };
    let dtype = match class_name.as_str() {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "LongStorage" => DType::I64,
        other => return Err(format!("storage type {other} is not supported")),
    };
    Ok((key, dtype))
}

fn non_negative(value: Object, what: &str) -> std::result::Result<u64, String> {
    match value {
        Object::Int(v) if v >= 0 => Ok(v as u64),
        Object::Long(v) if v >= 0 => Ok(v as u64),
        Object::Int(v) => Err(format!("{what} {v} is negative")),
        Object::Long(v) => Err(format!("{what} {v} is negative")),
        _ => Err(format!("{what} is not an integer")),
    }
}

fn dims(value: Object, what: &str) -> std::result::Result<Vec<usize>, String> {
    let Object::Tuple(values) = value else {
        return Err(format!("{what} is not a tuple"));
    };
    if values.len() > MAX_RANK {
        return Err(format!("{what} has {} dimensions", values.len()));
    }
    values
        .into_iter()
        .map(|v| {
            let n = non_negative(v, what)?;
            usize::try_from(n).map_err(|_| format!("{what} {n} is too large"))
        })
        .collect()
}

/// Whether `stride` lays `shape` out column-major (`true`) or row-major (`false`);
/// an error for other layouts, which candle cannot read either.
fn layout(shape: &[usize], stride: &[usize]) -> std::result::Result<bool, String> {
    let dense = |order: &mut dyn Iterator<Item = (&usize, &usize)>| {
        let mut acc = 1u64;
        for (&dim, &step) in order {
            if dim > 1 && step as u64 != acc {
                return false;
            }
            acc = acc.saturating_mul(dim as u64);
        }
        true
    };
    if shape.len() != stride.len() {
        return Err(format!("size {shape:?} and stride {stride:?} disagree"));
    }
    if dense(&mut shape.iter().zip(stride).rev()) {
        Ok(false)
    } else if dense(&mut shape.iter().zip(stride)) {
        Ok(true)
    } else {
        Err(format!(
            "strided layout (size {shape:?}, stride {stride:?}) is not supported"
        ))
    }
}

/// Every tensor lies within its storage entry, and the distinct tensors together
/// claim no more bytes than their storages hold (so reading them is bounded by
/// the file's size).
fn check_claims(file: &Path, archive: &mut Archive, tensors: &[PthTensor]) -> Result<()> {
    let file_len = std::fs::metadata(file)
        .map_err(|e| BertError::io(Op::Read, file, &e))?
        .len();
    let mut held: BTreeMap<&str, u64> = BTreeMap::new();
    let mut claimed = 0u64;
    let mut seen = HashSet::new();
    for tensor in tensors {
        let view = &tensor.view;
        let holds = match held.get(view.entry.as_str()) {
            Some(&n) => n,
            None => {
                let n = stored_bytes(archive, &view.entry, file_len)
                    .map_err(|m| BertError::weight(file, &tensor.name, m))?;
                held.insert(&view.entry, n);
                n
            }
        };
        let end = view.offset + view.bytes;
        if end > holds {
            return Err(BertError::weight(
                file,
                &tensor.name,
                format!(
                    "claims {end} bytes ({:?} {:?} at byte {}) but the file holds {holds} for its storage {}",
                    view.shape, view.dtype, view.offset, view.entry
                ),
            ));
        }
        if seen.insert(view) {
            claimed = claimed.saturating_add(view.bytes);
        }
    }
    let holds: u64 = held.values().sum();
    if claimed > holds {
        return Err(BertError::file(
            file,
            format!("tensors claim {claimed} bytes but the file holds {holds} for them"),
        ));
    }
    Ok(())
}

/// The bytes a storage entry really has in the file.
fn stored_bytes(
    archive: &mut Archive,
    entry: &str,
    file_len: u64,
) -> std::result::Result<u64, String> {
    let found = archive
        .by_name(entry)
        .map_err(|e| format!("storage {entry}: {e}"))?;
    if found.compression() != zip::CompressionMethod::Stored {
        return Err(format!(
            "storage {entry} is compressed ({}); torch writes storages uncompressed",
            found.compression()
        ));
    }
    let start = found.data_start().unwrap_or_else(|| found.header_start());
    Ok(found
        .size()
        .min(found.compressed_size())
        .min(file_len.saturating_sub(start)))
}

/// Read the tensors `list` returned; tensors sharing a view share the data.
pub(super) fn read(file: &Path, tensors: &[PthTensor]) -> Result<HashMap<String, Tensor>> {
    let mut archive = open_archive(file)?;
    let mut by_view: HashMap<&View, Tensor> = HashMap::new();
    let mut out = HashMap::new();
    for tensor in tensors {
        let loaded = match by_view.get(&tensor.view) {
            Some(t) => t.clone(),
            None => {
                let t = read_view(&mut archive, &tensor.view).map_err(|m| {
                    BertError::weight(file, &tensor.name, format!("cannot read: {m}"))
                })?;
                by_view.insert(&tensor.view, t.clone());
                t
            }
        };
        out.insert(tensor.name.clone(), loaded);
    }
    Ok(out)
}

fn read_view(archive: &mut Archive, view: &View) -> std::result::Result<Tensor, String> {
    let mut entry = archive.by_name(&view.entry).map_err(|e| e.to_string())?;
    std::io::copy(&mut (&mut entry).take(view.offset), &mut std::io::sink())
        .map_err(|e| e.to_string())?;
    // `list` checked that the entry holds these bytes.
    let len = usize::try_from(view.bytes).map_err(|e| e.to_string())?;
    let mut data = vec![0u8; len];
    entry.read_exact(&mut data).map_err(|e| e.to_string())?;
    let rank = view.shape.len();
    if view.column_major && rank > 1 {
        let reversed: Vec<usize> = view.shape.iter().rev().copied().collect();
        let order: Vec<usize> = (0..rank).rev().collect();
        Tensor::from_raw_buffer(&data, view.dtype, &reversed, &Device::Cpu)
            .and_then(|t| t.permute(order))
            .and_then(|t| t.contiguous())
    } else {
        Tensor::from_raw_buffer(&data, view.dtype, &view.shape, &Device::Cpu)
    }
    .map_err(|e| e.to_string())
}
