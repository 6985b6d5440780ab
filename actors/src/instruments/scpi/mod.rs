//! The SCPI instrument (`type = "scpi"`): text queries over TCP or a serial port, one row per
//! poll.
//!
//! - [`config`](ScpiInstrumentConfig): the serde config and its checks.
//! - [`Address`]: the address forms (`TCPIP::HOST::PORT::SOCKET`, `ASRL/dev/...::INSTR`,
//!   `tcp://`, `serial://`).
//! - [`Transport`]: one line-oriented connection with terminations and timeouts.
//! - [`AnswerParser`]: answers to numbers (number, regex group, csv field).
//! - [`Session`]: the plain async logic: connect, poll rows, set parameters, reconnect, count.
//! - [`ScpiActor`]: the thin actix shell that polls, batches and emits.

mod acquisition;
mod actor;
mod address;
mod config;
mod parse;
mod session;
mod transport;

#[cfg(test)]
mod tests;

pub use actor::{ReadNow, Reading, ScpiActor, ScpiReport, Set};
pub use address::{Address, AddressError};
pub use config::{
    FlowControl, Identify, NamedParse, Parity, ParseSpec, ReadConfig, ScpiInstrumentConfig,
    SetConfig,
};
pub use parse::{AnswerParser, ParseError, SCPI_OVERFLOW, parse_number};
pub use session::{ChannelCounters, Gap, Row, SETTLE_INTERVAL, ScpiError, Session, SessionReport};
pub use transport::{MAX_LINE_BYTES, Transport, TransportError, TransportSettings};
