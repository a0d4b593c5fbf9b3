//! The library's error type: every failure names the file (and key or field) at fault.

use std::path::{Path, PathBuf};

/// What an I/O call was doing when it failed; error messages say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Create,
    Rename,
    Remove,
    Copy,
    List,
}

impl Op {
    pub fn verb(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Create => "create",
            Op::Rename => "rename",
            Op::Remove => "remove",
            Op::Copy => "copy",
            Op::List => "list",
        }
    }
}

/// What a data column holds, for messages about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    TextA,
    TextB,
    Label,
}

impl std::fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnRole::TextA => "first-sentence (text A)",
            ColumnRole::TextB => "second-sentence (text B)",
            ColumnRole::Label => "label",
        })
    }
}

/// Errors raised by the engine. Messages are one line and name what the user supplied.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{path}:{line}:{column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{path}: tensor `{key}`: {message}")]
    Weight {
        path: PathBuf,
        key: String,
        message: String,
    },

    /// A data file's header lacks a column the reader was told to use; the
    /// CLI and the app add how to choose another (a flag, a field).
    #[error("{path}:1: no column \"{name}\" in the header ({header}); choose the {role} column")]
    MissingColumn {
        path: PathBuf,
        name: String,
        role: ColumnRole,
        header: String,
    },

    /// An output that exists and would have to be replaced.
    #[error("{path}: {message}")]
    OutputExists { path: PathBuf, message: String },

    #[error("model `{name}` not found: {message}")]
    ModelNotFound { name: String, message: String },

    #[error("{0}")]
    Input(String),

    /// The caller's cancel flag was set while the work ran.
    #[error("cancelled")]
    Cancelled,

    #[error("{0}")]
    Unsupported(String),

    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T, E = BertError> = std::result::Result<T, E>;

impl BertError {
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        BertError::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn line(path: &Path, line: usize, message: impl Into<String>) -> Self {
        BertError::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// An I/O failure of `op` on `path`: `cannot write: No space left on device`.
    pub fn io(op: Op, path: &Path, err: &std::io::Error) -> Self {
        let reason = match err.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => {
                // io::Error's Display appends " (os error N)"; the reason is enough.
                let text = err.to_string();
                match text.rfind(" (os error ") {
                    Some(cut) => text[..cut].to_string(),
                    None => text,
                }
            }
        };
        Self::file(path, format!("cannot {}: {reason}", op.verb()))
    }

    pub fn json(path: &Path, err: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C"; we put the position in front instead.
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(cut) => text[..cut].to_string(),
            None => text,
        };
        BertError::Json {
            path: path.to_path_buf(),
            line: err.line(),
            column: err.column(),
            message,
        }
    }

    pub fn weight(path: &Path, key: &str, message: impl Into<String>) -> Self {
        BertError::Weight {
            path: path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Read a whole file, mapping I/O failures to a message naming it.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            BertError::file(path, "not valid UTF-8")
        } else {
            BertError::io(Op::Read, path, &e)
        }
    })
}
