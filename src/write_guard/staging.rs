//! Staging directories beside an output (`.NAME.bertscope-KIND-PID-N`): made
//! fresh for each write, removed when a write fails, and cleared by a later
//! run when a killed process left them; and the free space a write can use.

use std::path::{Path, PathBuf};

use super::{resolve, CHECKPOINT_FILES, EPOCHS_DIR, TEMP_INFIX};
use crate::error::{BertError, Op, Result};

/// A new, empty directory next to `output` (same filesystem, so moving it into
/// place is a rename), named `.NAME.bertscope-KIND-PID-N`.
pub fn staging_dir(output: &Path, kind: &str) -> Result<PathBuf> {
    let parent = parent_of(output);
    std::fs::create_dir_all(&parent).map_err(|e| BertError::io(Op::Create, &parent, &e))?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let mut n = 0;
    loop {
        let dir = parent.join(format!(
            ".{name}.bertscope-{kind}-{}-{n}",
            std::process::id()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(BertError::io(Op::Create, &dir, &e)),
        }
    }
}

/// Remove the staging directories that killed bertscope processes left next
/// to `output` (`.NAME.bertscope-KIND-PID-N`, the process gone, holding
/// nothing but checkpoint files). Returns how many were removed.
pub fn remove_stale_staging(output: &Path) -> usize {
    let Some(name) = output.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return 0;
    };
    // `..NAME.bertscope-…`: a staging directory being deleted (see `remove_ours`).
    let prefixes = [
        format!(".{name}.bertscope-"),
        format!("..{name}.bertscope-"),
    ];
    let Ok(entries) = parent_of(output).read_dir() else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = prefixes
            .iter()
            .find_map(|p| file_name.strip_prefix(p.as_str()))
        else {
            continue;
        };
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if pid.is_some_and(|pid| !alive(pid))
            && is_dir
            && only_checkpoint_files(&entry.path())
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A directory (tree) holding only the names bertscope writes: checkpoint
/// files (and the temporary files they are written through), `epochs/`,
/// `run.json`, `last/`, `best/`.
fn only_checkpoint_files(dir: &Path) -> bool {
    let Ok(entries) = dir.read_dir() else {
        return false;
    };
    entries.flatten().all(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = e.file_type();
        if kind.as_ref().is_ok_and(|t| t.is_dir()) {
            let known = [EPOCHS_DIR, "last", "best"].contains(&name.as_str())
                || name.starts_with("epoch-")
                || name.starts_with('.') && name.contains(".bertscope-");
            known && only_checkpoint_files(&e.path())
        } else {
            kind.is_ok_and(|t| t.is_file())
                && (CHECKPOINT_FILES.contains(&name.as_str())
                    || name == "run.json"
                    || is_temp_of_checkpoint_file(&name))
        }
    })
}

/// `.model.safetensors.bertscope-tmp-PID-N`: a checkpoint file a killed
/// process was writing.
fn is_temp_of_checkpoint_file(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|rest| rest.split_once(&format!(".{TEMP_INFIX}")))
        .is_some_and(|(file, _)| CHECKPOINT_FILES.contains(&file))
}

pub(super) fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Delete a staging directory this process made, whatever state a failed
/// write left it in — but only while it holds nothing but checkpoint files.
pub fn remove_staging(dir: &Path) -> Result<()> {
    if !only_checkpoint_files(dir) {
        return Err(BertError::file(
            dir,
            "not deleted: it holds files bertscope does not write",
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| BertError::io(Op::Remove, dir, &e))
}

/// Bytes free for an unprivileged user on the filesystem holding `path` (or
/// its nearest existing ancestor); `None` when the system cannot say.
pub fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let resolved = resolve(path);
    let existing = resolved.ancestors().find(|p| p.exists())?;
    let c = std::ffi::CString::new(existing.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `stat` is written by the
    // call before it is read (only when it returns 0).
    let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let (blocks, size) = (stat.f_bavail as u64, stat.f_frsize as u64);
    Some(blocks * size)
}
