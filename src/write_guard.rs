//! What bertscope may write, replace or delete: every output is checked against
//! the things it must never touch (the current directory and its ancestors, the
//! base model, the data files, the running executable), a directory is only
//! replaced when it is a checkpoint bertscope wrote, and replacing is atomic.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::error::{BertError, Op, Result};

mod staging;
use staging::parent_of;
pub use staging::{free_space, remove_staging, remove_stale_staging, staging_dir};

/// The files a bertscope checkpoint directory holds; anything else in a
/// directory means it is not (only) ours.
pub const CHECKPOINT_FILES: [&str; 10] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "metrics.json",
    "training_args.json",
    "optimizer.safetensors",
    "trainer_state.json",
];

/// What names a temporary file ([`temp_sibling`]): `.NAME.bertscope-tmp-PID-N`.
const TEMP_INFIX: &str = "bertscope-tmp-";

/// The subdirectory of a checkpoint that holds its per-epoch checkpoints.
pub const EPOCHS_DIR: &str = "epochs";

/// The key in `training_args.json` that marks a checkpoint as bertscope's.
pub const MARKER_KEY: &str = "written_by";

/// Paths an output must neither be, contain nor sit inside, each with what it is
/// ("the base model", "the training data", …) for the error message.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    paths: Vec<Guarded>,
}

#[derive(Debug, Clone)]
struct Guarded {
    what: String,
    path: PathBuf,
    /// Whether an output may be created inside it (the current directory: yes).
    inside_allowed: bool,
}

impl Protected {
    /// The current directory (and so its ancestors) and the running executable.
    pub fn new() -> Self {
        let mut protected = Protected::default();
        if let Ok(cwd) = std::env::current_dir() {
            protected.paths.push(Guarded {
                what: "the current directory".into(),
                path: resolve(&cwd),
                inside_allowed: true,
            });
        }
        if let Ok(exe) = std::env::current_exe() {
            protected.add("the running bertscope executable", &exe);
        }
        protected
    }

    /// Protect `path` (a file or a directory), described as `what`.
    pub fn add(&mut self, what: &str, path: &Path) -> &mut Self {
        self.paths.push(Guarded {
            what: what.to_string(),
            path: resolve(path),
            inside_allowed: false,
        });
        self
    }

    pub fn with(mut self, what: &str, path: &Path) -> Self {
        self.add(what, path);
        self
    }
}

/// `path` made absolute with symbolic links resolved as far as it exists, and
/// `.`/`..` applied to the part that does not exist yet.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut existing = absolute.clone();
    let mut missing: Vec<OsString> = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return apply(canonical, &missing);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return lexical(&absolute),
        }
    }
}

/// Append the not-yet-existing components (stored last-first) to `base`.
fn apply(base: PathBuf, missing_reversed: &[OsString]) -> PathBuf {
    let mut out = base;
    for name in missing_reversed.iter().rev() {
        out.push(name);
    }
    lexical(&out)
}

/// `path` made absolute with its parent resolved but its last component kept
/// as it is (a symbolic link stays a link, to be refused as an output).
pub fn absolute(path: &Path) -> PathBuf {
    match path.file_name() {
        Some(name) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            resolve(parent.unwrap_or(Path::new("."))).join(name)
        }
        None => resolve(path),
    }
}

/// `.` and `..` applied without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why `output` must not be written, if it is, contains or sits inside a
/// protected path.
fn clash(output: &Path, protected: &Protected) -> Option<String> {
    for Guarded {
        what,
        path,
        inside_allowed,
    } in &protected.paths
    {
        if output == path {
            return Some(format!("is {what}"));
        }
        if path.starts_with(output) {
            return Some(format!("contains {what} ({})", path.display()));
        }
        if output.starts_with(path) && !inside_allowed {
            return Some(format!("is inside {what} ({})", path.display()));
        }
    }
    None
}

/// Check that `output` may become a new checkpoint directory. Without
/// `overwrite` it must not exist or be empty; with it, an existing directory
/// must be a checkpoint bertscope wrote. Never the current directory or an
/// ancestor, nor anything that is, contains or sits inside a protected path.
pub fn check_output_dir(output: &Path, protected: &Protected, overwrite: bool) -> Result<()> {
    if output.as_os_str().is_empty() {
        return Err(BertError::Input("the output directory is empty".into()));
    }
    if let Some(why) = clash(&resolve(output), protected) {
        return Err(BertError::file(
            output,
            format!("{why}; choose another output"),
        ));
    }
    let meta = match std::fs::symlink_metadata(output) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BertError::io(Op::Read, output, &e)),
    };
    if meta.file_type().is_symlink() {
        return Err(BertError::file(
            output,
            "is a symbolic link; give the directory it points to, or another output",
        ));
    }
    if !meta.is_dir() {
        return Err(BertError::file(output, "exists and is not a directory"));
    }
    let names = listing(output)?;
    if names.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(BertError::OutputExists {
            path: output.to_path_buf(),
            message: format!("is not empty (it holds {})", preview(&names)),
        });
    }
    ours(output).map_err(|why| {
        BertError::file(
            output,
            format!("is not a checkpoint bertscope wrote ({why}); nothing was replaced"),
        )
    })
}

/// Check that the file `output` may be written (replacing an existing file):
/// never a protected file however spelled (same canonical path or same inode),
/// never a directory.
pub fn check_output_file(output: &Path, protected: &Protected) -> Result<()> {
    if let Some(why) = clash(&resolve(output), protected) {
        return Err(BertError::file(
            output,
            format!("{why}; choose another output"),
        ));
    }
    for Guarded { what, path, .. } in &protected.paths {
        if same_file(output, path) {
            return Err(BertError::file(
                output,
                format!("is {what} (the same file by another name); choose another output"),
            ));
        }
    }
    match std::fs::metadata(output) {
        Ok(meta) if meta.is_dir() => Err(BertError::file(output, "is a directory")),
        _ => Ok(()),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The entry names of a directory, sorted.
fn listing(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = dir
        .read_dir()
        .map_err(|e| BertError::io(Op::List, dir, &e))?
        .map(|entry| {
            entry
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(|e| BertError::io(Op::List, dir, &e))
        })
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// `Ok` when `dir` is a checkpoint bertscope wrote: `config.json` and a
/// `training_args.json` carrying bertscope's mark, and nothing but the files a
/// checkpoint holds (and `epochs/epoch-N` checkpoints). Else why not.
pub fn ours(dir: &Path) -> std::result::Result<(), String> {
    let names = listing(dir).map_err(|e| e.to_string())?;
    let strangers: Vec<String> = names
        .iter()
        .filter(|n| !CHECKPOINT_FILES.contains(&n.as_str()) && n.as_str() != EPOCHS_DIR)
        .cloned()
        .collect();
    if !strangers.is_empty() {
        return Err(format!("it holds {}", preview(&strangers)));
    }
    if !names.iter().any(|n| n == "config.json") {
        return Err("it has no config.json".into());
    }
    marked(&dir.join("training_args.json"))?;
    let epochs = dir.join(EPOCHS_DIR);
    if names.iter().any(|n| n == EPOCHS_DIR) {
        let meta = std::fs::symlink_metadata(&epochs).map_err(|e| e.to_string())?;
        if !meta.is_dir() {
            return Err(format!("{EPOCHS_DIR} is not a directory"));
        }
        for name in listing(&epochs).map_err(|e| e.to_string())? {
            let sub = epochs.join(&name);
            let numbered = name
                .strip_prefix("epoch-")
                .is_some_and(|n| n.parse::<usize>().is_ok());
            let is_dir = std::fs::symlink_metadata(&sub).is_ok_and(|m| m.is_dir());
            if !numbered || !is_dir {
                return Err(format!("{EPOCHS_DIR}/ holds {name}"));
            }
            ours(&sub).map_err(|why| format!("{EPOCHS_DIR}/{name}: {why}"))?;
        }
    }
    Ok(())
}

/// `training_args.json` exists and carries bertscope's mark (or, for runs
/// written before the mark, both `base_model` and `task`).
fn marked(path: &Path) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|_| "it has no training_args.json")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| "its training_args.json is not JSON")?;
    let has = |key: &str| value.get(key).is_some();
    if has(MARKER_KEY) || (has("base_model") && has("task")) {
        Ok(())
    } else {
        Err("its training_args.json was not written by bertscope".into())
    }
}

/// Move the finished directory `staged` to `output`. An existing `output`
/// (checked to be ours, or empty) is swapped out atomically where the system
/// can (Linux `renameat2(RENAME_EXCHANGE)`), else set aside first; the old
/// one is deleted only once the new one is in place. Killed at any moment,
/// `output` is the old or the new directory, never neither.
pub fn replace_dir(staged: &Path, output: &Path) -> Result<()> {
    match std::fs::symlink_metadata(output) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::rename(staged, output)
                .map_err(|e| BertError::io(Op::Rename, output, &e));
        }
        Err(e) => return Err(BertError::io(Op::Read, output, &e)),
        Ok(_) => {}
    }
    if listing(output)?.is_empty() {
        std::fs::remove_dir(output).map_err(|e| BertError::io(Op::Remove, output, &e))?;
        return std::fs::rename(staged, output).map_err(|e| BertError::io(Op::Rename, output, &e));
    }
    // Checked again right before replacing: the folder may have changed since.
    ours(output).map_err(|why| {
        BertError::file(
            output,
            format!("is not a checkpoint bertscope wrote ({why}); nothing was replaced"),
        )
    })?;
    if exchange(staged, output).is_ok() {
        // `staged` now holds the old checkpoint.
        return remove_ours(staged);
    }
    let aside = staging_dir(output, "old")?;
    std::fs::remove_dir(&aside).map_err(|e| BertError::io(Op::Remove, &aside, &e))?;
    std::fs::rename(output, &aside).map_err(|e| BertError::io(Op::Rename, output, &e))?;
    if let Err(e) = std::fs::rename(staged, output) {
        let _ = std::fs::rename(&aside, output);
        return Err(BertError::io(Op::Rename, output, &e));
    }
    remove_ours(&aside)
}

/// Atomically swap two directories (Linux); `Err` where unsupported.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Delete a directory bertscope made (a staging directory or a replaced
/// checkpoint), refusing anything that is not plainly ours. It is first
/// renamed to a staging name, so a kill midway leaves a leftover that
/// [`remove_stale_staging`] clears, never a half-deleted checkpoint.
pub fn remove_ours(dir: &Path) -> Result<()> {
    if !listing(dir)?.is_empty() {
        ours(dir)
            .map_err(|why| BertError::file(dir, format!("not deleted: not bertscope's ({why})")))?;
    }
    let doomed = staging_dir(dir, "old")?;
    std::fs::remove_dir(&doomed).map_err(|e| BertError::io(Op::Remove, &doomed, &e))?;
    let target = match std::fs::rename(dir, &doomed) {
        Ok(()) => doomed,
        Err(_) => dir.to_path_buf(),
    };
    std::fs::remove_dir_all(&target).map_err(|e| BertError::io(Op::Remove, dir, &e))
}

/// A new, empty file beside `path` (`.NAME.bertscope-tmp-PID-N`) to write
/// before renaming it into place; the caller removes it if the write fails.
fn temp_sibling(path: &Path) -> Result<(PathBuf, std::fs::File)> {
    let parent = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let mut n = 0;
    loop {
        let tmp = parent.join(format!(".{name}.{TEMP_INFIX}{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(BertError::io(Op::Create, path, &e)),
        }
    }
}

/// Fill a new temporary sibling of `path` (created exclusively, so it is
/// ours) with `fill`, then rename it over `path`: a reader (or a crash) sees
/// the old file or the complete new one. On any failure the temporary file
/// is removed and `path` is left as it was.
pub fn via_temp_sibling(path: &Path, fill: impl FnOnce(std::fs::File) -> Result<()>) -> Result<()> {
    let (tmp, file) = temp_sibling(path)?;
    if let Err(e) = fill(file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        BertError::io(Op::Rename, path, &e)
    })
}

/// Write a file through a temporary sibling and a rename, synced to disk
/// before the rename ([`via_temp_sibling`]). `write` fills the file.
pub fn write_file_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    via_temp_sibling(path, |file| {
        let mut writer = std::io::BufWriter::new(file);
        write(&mut writer)
            .and_then(|()| writer.flush())
            .and_then(|()| writer.get_ref().sync_all())
            .map_err(|e| BertError::io(Op::Write, path, &e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_applies_dots_to_missing_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        assert_eq!(resolve(&tmp.path().join("a/../b/./c")), root.join("b/c"));
        assert_eq!(resolve(&tmp.path().join("x/..")), root);
    }

    #[test]
    fn clash_names_what_is_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("models/base");
        std::fs::create_dir_all(&base).unwrap();
        let p = Protected::default().with("the base model", &base);
        let why = |o: &Path| clash(&resolve(o), &p);
        assert_eq!(why(&base).as_deref(), Some("is the base model"));
        assert!(why(&tmp.path().join("models"))
            .unwrap()
            .starts_with("contains the base model"));
        assert!(why(&base.join("tuned"))
            .unwrap()
            .starts_with("is inside the base model"));
        assert_eq!(why(&tmp.path().join("models/tuned")), None);
    }
}
