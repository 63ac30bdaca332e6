//! The control socket: a Unix stream socket, one JSON request line → one JSON response line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::api::{Request, Response};

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// Send one request and wait for the answer (blocking; used by the CLI and the lab).
pub fn call(socket: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut s = match StdUnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied => "the socket is root-only: run as root",
                std::io::ErrorKind::ConnectionRefused => {
                    "no daemon behind it: is `causeway run` running?"
                }
                _ => "is `causeway run` running? --socket PATH picks another socket",
            };
            bail!(
                "cannot connect to the control socket {} ({hint}): {e}",
                socket.display()
            );
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut reader = BufReader::new(s);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        bail!("the daemon closed the control connection without an answer");
    }
    let resp: Response =
        serde_json::from_str(answer.trim_end()).context("bad answer from the daemon")?;
    Ok(resp)
}

/// A request from the control socket with the channel for its answer.
pub type Call = (Request, oneshot::Sender<Response>);

/// A bound control socket; removes its file when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Bind `path` (mode 0600), replacing a stale socket file but refusing to steal a live one.
    pub fn bind(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        if path.exists() {
            if StdUnixStream::connect(path).is_ok() {
                bail!("another causeway daemon is listening on {}", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        // Bind with a restrictive umask so the socket is never briefly world-accessible.
        // SAFETY: umask only changes this process's file-creation mask; it cannot fail.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restores the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound.with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Accept connections forever, forwarding each request to `tx`.
    pub async fn serve(self, tx: mpsc::Sender<Call>) {
        loop {
            let (stream, _) = match self.listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut reader = TokioBufReader::new(r).take(MAX_REQUEST as u64);
                let mut line = String::new();
                let resp = match reader.read_line(&mut line).await {
                    Ok(0) => return,
                    Ok(_) => match serde_json::from_str::<Request>(line.trim_end()) {
                        Ok(req) => {
                            let (otx, orx) = oneshot::channel();
                            if tx.send((req, otx)).await.is_err() {
                                Response::error("daemon is shutting down")
                            } else {
                                orx.await
                                    .unwrap_or_else(|_| Response::error("daemon is shutting down"))
                            }
                        }
                        Err(e) => Response::error(format!("bad request: {e}")),
                    },
                    Err(e) => Response::error(format!("bad request: {e}")),
                };
                let mut out = serde_json::to_string(&resp)
                    .unwrap_or_else(|_| r#"{"ok":false,"error":"encoding"}"#.to_string());
                out.push('\n');
                let _ = w.write_all(out.as_bytes()).await;
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_response_roundtrip() {
        let dir = std::env::temp_dir().join(format!("cw-ctl-test-{}", std::process::id()));
        let path = dir.join("c.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel::<Call>(4);
        tokio::spawn(sock.serve(tx));
        tokio::spawn(async move {
            while let Some((req, answer)) = rx.recv().await {
                let _ = answer.send(Response::message(format!("{req:?}")));
            }
        });
        let p = path.clone();
        let resp = tokio::task::spawn_blocking(move || {
            call(
                &p,
                &Request::Rekey {
                    tunnel: "x".into(),
                    ike: true,
                },
            )
        })
        .await
        .unwrap()
        .unwrap();
        assert!(resp.ok);
        assert_eq!(
            resp.message.as_deref(),
            Some(r#"Rekey { tunnel: "x", ike: true }"#)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn request_json_is_stable() {
        let j = serde_json::to_string(&Request::Initiate { tunnel: "a".into() }).unwrap();
        assert_eq!(j, r#"{"cmd":"initiate","tunnel":"a"}"#);
        let r: Request = serde_json::from_str(r#"{"cmd":"rekey","tunnel":"a"}"#).unwrap();
        assert_eq!(
            r,
            Request::Rekey {
                tunnel: "a".into(),
                ike: false
            }
        );
    }
}
