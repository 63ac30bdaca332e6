//! Pre-shared keys: where they come from ([`PskSource`]), the permission check done at
//! validation time, and loading them ([`load_psk`]) into a zeroized [`Psk`].
//!
//! Nothing in this module puts key material into an error, a `Debug` string or a log.

use core::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Largest PSK file accepted (PSKs are short; this stops reading a wrong, huge file).
pub const MAX_PSK_LEN: usize = 4096;

/// Where a tunnel's PSK comes from (exactly one of `psk_file` / `psk_env`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PskSource {
    /// `psk_file`: a file only its owner can read (mode `& 0o077 == 0`). Relative paths
    /// in the config are resolved against the config file's directory; this path is the
    /// resolved one.
    File(PathBuf),
    /// `psk_env`: the name of an environment variable of the daemon.
    Env(String),
}

/// A loaded pre-shared key. Zeroized on drop; `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    /// Wraps key bytes (e.g. for tests).
    pub fn new(bytes: Vec<u8>) -> Self {
        Psk(Zeroizing::new(bytes))
    }

    /// The key bytes. Keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never true for a loaded PSK).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a PSK could not be loaded. Never contains key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PskError {
    /// The file could not be opened or read.
    Io {
        /// The PSK file.
        path: PathBuf,
        /// The OS error, e.g. "No such file or directory (os error 2)".
        reason: String,
    },
    /// The file is not a regular file.
    NotAFile {
        /// The PSK file.
        path: PathBuf,
    },
    /// Group or others have some permission on the file.
    Permissions {
        /// The PSK file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o777`).
        mode: u32,
    },
    /// The file is larger than [`MAX_PSK_LEN`].
    TooLarge {
        /// The PSK file.
        path: PathBuf,
    },
    /// The environment variable is not set (or not valid Unicode).
    EnvMissing {
        /// The variable name.
        name: String,
    },
    /// The key is empty (after removing the trailing newline of a file).
    Empty {
        /// `psk_file PATH` or `psk_env NAME`.
        source: String,
    },
}

impl fmt::Display for PskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PskError::Io { path, reason } => {
                write!(f, "cannot read psk_file `{}`: {reason}", path.display())
            }
            PskError::NotAFile { path } => {
                write!(f, "psk_file `{}` is not a regular file", path.display())
            }
            PskError::Permissions { path, mode } => write!(
                f,
                "psk_file `{}` has mode {mode:04o}: group and others must have no access (chmod 600)",
                path.display()
            ),
            PskError::TooLarge { path } => write!(
                f,
                "psk_file `{}` is larger than {MAX_PSK_LEN} bytes",
                path.display()
            ),
            PskError::EnvMissing { name } => {
                write!(f, "psk_env: environment variable `{name}` is not set")
            }
            PskError::Empty { source } => write!(f, "{source}: the pre-shared key is empty"),
        }
    }
}

impl std::error::Error for PskError {}

/// Checks a PSK file without reading it: it exists, is a regular file, and
/// `mode & 0o077 == 0`. Used by validation (`causeway check`) and again by [`load_psk`].
pub fn check_psk_file(path: &Path) -> Result<(), PskError> {
    let meta = std::fs::metadata(path).map_err(|e| PskError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_meta(path, &meta)
}

fn check_meta(path: &Path, meta: &std::fs::Metadata) -> Result<(), PskError> {
    if !meta.is_file() {
        return Err(PskError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PskError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Loads the PSK. A file is opened first and its permissions checked on the open file
/// (no race with a `chmod` between check and read); one trailing `\n` or `\r\n` is
/// removed. An environment variable is used as is.
pub fn load_psk(source: &PskSource) -> Result<Psk, PskError> {
    match source {
        PskSource::File(path) => {
            let io = |e: std::io::Error| PskError::Io {
                path: path.clone(),
                reason: e.to_string(),
            };
            let file = std::fs::File::open(path).map_err(io)?;
            check_meta(path, &file.metadata().map_err(io)?)?;
            let mut buf = Zeroizing::new(Vec::with_capacity(128));
            file.take(MAX_PSK_LEN as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(io)?;
            if buf.len() > MAX_PSK_LEN {
                return Err(PskError::TooLarge { path: path.clone() });
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            if buf.is_empty() {
                return Err(PskError::Empty {
                    source: format!("psk_file `{}`", path.display()),
                });
            }
            Ok(Psk(buf))
        }
        PskSource::Env(name) => {
            let v = std::env::var(name).map_err(|_| PskError::EnvMissing { name: name.clone() })?;
            let v = Zeroizing::new(v.into_bytes());
            if v.is_empty() {
                return Err(PskError::Empty {
                    source: format!("psk_env `{name}`"),
                });
            }
            Ok(Psk(v))
        }
    }
}
