//! The control socket `RUN_DIR/control.sock`: `ensemble pause|resume|stop RUN_DIR` talk to
//! the run through it.
//!
//! One command per line, one JSON reply per line:
//!
//! | command | effect |
//! | --- | --- |
//! | `pause` | pause at the next point boundary |
//! | `pause now` | pause at once; the point in progress is taken again after the resume |
//! | `resume` | resume a paused plan |
//! | `stop` | stop the run (after the point in progress; at once while paused) |
//! | `status` | nothing; the reply carries the state |
//!
//! The reply is `{"ok":true,"state":{...}}` (a [`ControlState`]) or
//! `{"ok":false,"error":"..."}`. A malformed line (unknown command, not UTF-8, longer than
//! [`MAX_LINE`] bytes) gets an error reply; a line too long also closes the connection.
//!
//! Who may talk to it: the socket is created with mode 0600 (it is bound inside a private
//! 0700 directory and renamed into place, so it is never reachable with a wider mode), and
//! every connection's peer credentials are checked: a process of another user is refused
//! with an error reply even if the mode was widened by hand.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::handle::{ControlError, ControlState, RunControl};

/// File name of the socket inside the run directory.
pub const SOCKET_FILE: &str = "control.sock";
/// Longest command line accepted, in bytes.
pub const MAX_LINE: usize = 1024;
/// How long a connection may stay silent before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket could not be set up; the run goes on without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the control socket {path}: {source}")]
pub struct ControlSocketError {
    /// Where it was to be.
    pub path: PathBuf,
    /// What the system said.
    pub source: std::io::Error,
}

/// A listening control socket. Dropping it stops listening and removes the file.
pub struct ControlSocket {
    path: PathBuf,
    task: JoinHandle<()>,
}

/// One reply line.
#[derive(Debug, Serialize)]
struct Reply<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a ControlState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl ControlSocket {
    /// Creates `run_dir/control.sock` (mode 0600) and serves `control` on it until dropped.
    /// Must be called inside a tokio runtime.
    pub fn bind(run_dir: &Path, control: RunControl) -> Result<Self, ControlSocketError> {
        let path = run_dir.join(SOCKET_FILE);
        let err = |source| ControlSocketError {
            path: path.clone(),
            source,
        };
        let listener = bind_private(run_dir, &path).map_err(err)?;
        let owner = std::fs::metadata(&path).map_err(err)?.uid();
        let task = tokio::spawn(serve(listener, control, owner));
        Ok(Self { path, task })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds in a fresh 0700 directory, narrows the socket to 0600, then renames it into place.
fn bind_private(run_dir: &Path, path: &Path) -> std::io::Result<UnixListener> {
    let private = run_dir.join(format!(".control-{}", std::process::id()));
    std::fs::create_dir(&private)?;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
    let staged = private.join(SOCKET_FILE);
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result
}

async fn serve(listener: UnixListener, control: RunControl, owner: u32) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, control.clone(), owner));
            }
            Err(e) => {
                tracing::warn!(error = %e, "The control socket could not accept a connection.");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, control: RunControl, owner: u32) {
    let peer = stream.peer_cred();
    let (read, mut write) = stream.into_split();
    let by = match peer {
        Ok(cred) if cred.uid() == owner => match cred.pid() {
            Some(pid) => format!("socket (pid {pid})"),
            None => "socket".to_string(),
        },
        Ok(cred) => {
            let error = format!(
                "refused: this run belongs to uid {owner}, the connecting process is uid {}",
                cred.uid()
            );
            tracing::warn!("The control socket refused a connection: {error}.");
            let _ = write.write_all(&reply_line(Err(error))).await;
            return;
        }
        Err(e) => {
            let _ = write
                .write_all(&reply_line(Err(format!(
                    "refused: no peer credentials: {e}"
                ))))
                .await;
            return;
        }
    };
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        let read = async {
            let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
            limited.read_until(b'\n', &mut line).await
        };
        let n = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let too_long = line.len() > MAX_LINE && !line.ends_with(b"\n");
        let reply = if too_long {
            Err(format!("line longer than {MAX_LINE} bytes"))
        } else {
            execute(&line, &control, &by)
        };
        if write.write_all(&reply_line(reply)).await.is_err() || too_long {
            return;
        }
    }
}

/// Runs one command line; the state after it, or why not.
fn execute(line: &[u8], control: &RunControl, by: &str) -> Result<ControlState, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the command is not UTF-8".to_string())?;
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["pause"] => control.pause(false, by),
        ["pause", "now" | "--now"] => control.pause(true, by),
        ["resume"] => control.resume(by),
        ["stop"] => control.stop(by),
        ["status"] => Ok(control.state()),
        [] => return Err("empty command; commands: pause [now], resume, stop, status".into()),
        _ => {
            let shown: String = text.trim().chars().take(40).collect();
            return Err(format!(
                "unknown command `{shown}`; commands: pause [now], resume, stop, status"
            ));
        }
    };
    result.map_err(|e: ControlError| e.to_string())
}

fn reply_line(reply: Result<ControlState, String>) -> Vec<u8> {
    let reply = match &reply {
        Ok(state) => Reply {
            ok: true,
            state: Some(state),
            error: None,
        },
        Err(e) => Reply {
            ok: false,
            state: None,
            error: Some(e.clone()),
        },
    };
    // A struct of strings, numbers and timestamps always serializes.
    let mut line = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_and_malformed_ones_get_a_reason() {
        let c = RunControl::new();
        c.begin_plan(Some(1));
        assert!(execute(b"PAUSE now\n", &c, "t").is_ok());
        assert!(execute(b"status", &c, "t").is_ok());
        assert!(execute(b"resume\n", &c, "t").is_ok());
        let e = execute(b"launch missiles\n", &c, "t").expect_err("unknown");
        assert!(e.contains("unknown command `launch missiles`"), "{e}");
        assert!(execute(b"\xff\xfe\n", &c, "t").is_err());
        assert!(execute(b"\n", &c, "t").is_err());
        assert!(execute(b"pause later\n", &c, "t").is_err());
    }
}
