//! The SCPI instrument (`type = "scpi"`): text queries over TCP or a serial port, one row per
//! poll.
//!
//! - [`config`](ScpiInstrumentConfig): the serde config and its checks.
//! - [`Address`]: the address forms (`TCPIP::HOST::PORT::SOCKET`, `ASRL/dev/...::INSTR`,
//!   `tcp://`, `serial://`).
//! - [`Transport`]: one line-oriented connection with terminations and timeouts.
//! - [`AnswerParser`]: answers to numbers (number, regex group, csv field).
//! - [`Session`]: the plain async logic: connect, poll rows, set parameters, reconnect (and
//!   restore the commanded setpoints), count.
//! - [`SessionReport`] and friends: what a session did, for the manifest.
//! - [`ScpiProbe`]: the session shared between the acquisition loop and a plan's task.
//! - [`ScpiActor`]: the thin actix shell that polls, batches and emits.

mod acquisition;
mod actor;
mod address;
mod config;
mod error;
mod parse;
mod probe;
mod report;
mod session;
mod transport;

#[cfg(test)]
mod restore_tests;
#[cfg(test)]
mod tests;

pub use actor::ScpiActor;
pub use address::{Address, AddressError};
pub use config::{
    FlowControl, Identify, NamedParse, Parity, ParseSpec, ReadConfig, ScpiInstrumentConfig,
    SetConfig,
};
pub use error::ScpiError;
pub use parse::{AnswerParser, ParseError, SCPI_OVERFLOW, parse_number};
pub use probe::ScpiProbe;
pub use report::{
    ChannelCounters, Gap, Reading, Restore, RestoredSetpoint, ScpiReport, SessionReport,
};
pub use session::{Row, SETTLE_INTERVAL, Session};
pub use transport::{MAX_LINE_BYTES, Transport, TransportError, TransportSettings};
