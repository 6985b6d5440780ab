//! Controlling a running plan: the [`RunControl`] handle and the Unix control socket.
//!
//! - `handle`: [`RunControl`], the cloneable handle every front end calls (socket, live web
//!   page, terminal): pause (deferred or `now`), resume, stop, and a [`ControlState`] snapshot.
//! - `record`: [`Interruption`], one pause or suspension as `run.json` records it.
//! - `socket`: [`ControlSocket`], `RUN_DIR/control.sock` (0600, peer uid checked).
//! - `client`: [`send_command`], what `ensemble pause|resume|stop RUN_DIR` use.
//! - `terminal`: [`TerminalKeys`], the `p`/`r` keys when stdin is a TTY.

mod client;
mod handle;
mod record;
mod socket;
mod terminal;

pub use client::{ControlClientError, send_command};
pub use handle::{ControlError, ControlState, Gate, Phase, RunControl};
pub use record::{Interruption, InterruptionKind};
pub use socket::{ControlSocket, ControlSocketError, MAX_LINE, SOCKET_FILE};
pub use terminal::{TerminalKeys, restore_terminal};
