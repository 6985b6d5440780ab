//! The client side of the control socket, for `ensemble pause|resume|stop RUN_DIR`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::socket::SOCKET_FILE;

/// How long the client waits for the run to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A command could not be delivered, or the run refused it.
#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    /// No socket: the run has ended, or the path is not a run directory.
    #[error(
        "cannot reach the run's control socket {path}: {source} (has the run ended? is this a \
         run directory?)"
    )]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Writing or reading failed midway, or the reply was not JSON.
    #[error("the run did not answer properly: {0}")]
    Reply(String),
    /// The run refused the command, saying why.
    #[error("the run refused: {0}")]
    Refused(String),
}

/// Sends one command line (`pause`, `pause now`, `resume`, `stop`, `status`) to the run in
/// `run_dir` and returns the state it replied with (a
/// [`ControlState`](super::ControlState) as JSON).
pub fn send_command(
    run_dir: &Path,
    command: &str,
) -> Result<serde_json::Value, ControlClientError> {
    let path = run_dir.join(SOCKET_FILE);
    let mut stream = UnixStream::connect(&path).map_err(|source| ControlClientError::Connect {
        path: path.clone(),
        source,
    })?;
    let io = |e: std::io::Error| ControlClientError::Reply(e.to_string());
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
    // A refused peer gets its reply before the run closes the connection, so a write that
    // fails (broken pipe) may still have a reply waiting: read it before giving up.
    let written = stream.write_all(format!("{command}\n").as_bytes());
    let mut line = String::new();
    let read = BufReader::new(&stream).read_line(&mut line);
    match (written, read) {
        (_, Ok(n)) if n > 0 => {}
        (Err(e), _) | (Ok(()), Err(e)) => return Err(io(e)),
        (Ok(()), Ok(_)) => return Err(ControlClientError::Reply("no reply".into())),
    }
    let reply: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| ControlClientError::Reply(e.to_string()))?;
    if reply["ok"] == true {
        Ok(reply["state"].clone())
    } else {
        Err(ControlClientError::Refused(
            reply["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string(),
        ))
    }
}
