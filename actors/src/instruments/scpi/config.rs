//! Configuration of an SCPI instrument (`type = "scpi"`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::address::Address;

/// An instrument that speaks SCPI text lines over TCP or a serial port.
///
/// Every `poll_interval` the instrument sends each `[[read]]` query in order and records one
/// row: one nullable Float64 column per read. Settable parameters (`[set.NAME]`) are driven by
/// scan plans.
///
/// ```
/// # use ensemble_actors::instruments::scpi::ScpiInstrumentConfig;
/// let cfg: ScpiInstrumentConfig = toml::from_str(r#"
///     address = "tcp://127.0.0.1:5025"
///     init = ["*CLS"]
///     [[read]]
///     channel = "v"
///     query = "MEAS:VOLT?"
///     unit = "V"
///     [set.voltage]
///     command = "VOLT {value}"
///     readback = "VOLT?"
///     min = 0.0
///     max = 30.0
///     tolerance = 0.01
/// "#).unwrap();
/// assert!(cfg.check().is_empty());
/// ```
///
/// # Not supported
/// Binary block answers (`#<n><len>...`), service requests, and more than one value per query
/// (use one `[[read]]` per field with `parse = { csv = INDEX }`; the query is then sent once per
/// read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScpiInstrumentConfig {
    /// Where the device is: `TCPIP::HOST::PORT::SOCKET`, `ASRL/dev/ttyUSB0::INSTR`,
    /// `tcp://HOST:PORT` or `serial:///dev/ttyUSB0` (see [`Address`]).
    pub address: String,
    /// Serial only: line speed in bits per second.
    #[serde(default = "default_baud_rate")]
    pub baud_rate: u32,
    /// Serial only: bits per character, 5 to 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Serial only: parity bit.
    #[serde(default)]
    pub parity: Parity,
    /// Serial only: stop bits, 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Serial only: flow control.
    #[serde(default)]
    pub flow_control: FlowControl,
    /// What ends each answer from the device (`"\n"`, `"\r"` or `"\r\n"` usually).
    #[serde(default = "default_termination")]
    pub read_termination: String,
    /// What is appended to each command sent.
    #[serde(default = "default_termination")]
    pub write_termination: String,
    /// How long to wait for one answer (and for a TCP connection) before giving up on it.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Commands sent after every (re)connection, in order, with no answer read.
    #[serde(default)]
    pub init: Vec<String>,
    /// The identification query sent after `init` (`"*IDN?"`), or `false` to skip it. A device
    /// that does not answer it gives a warning, not a failure.
    #[serde(default)]
    pub identify: Identify,
    /// How often a row is read.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A batch is emitted once it holds this many rows...
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: usize,
    /// ...or once its first row is this old, whichever comes first.
    #[serde(default = "default_batch_interval", with = "humantime_serde")]
    pub batch_interval: Duration,
    /// First wait before reconnecting after a lost connection; doubles per failed attempt.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// The channels: one query per column, in column order.
    #[serde(default)]
    pub read: Vec<ReadConfig>,
    /// Settable parameters by name, for scan plans.
    #[serde(default)]
    pub set: BTreeMap<String, SetConfig>,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Serial flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    /// None.
    #[default]
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// The identification query: `true` (the default, `*IDN?`), `false` (skip), or a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Identify {
    /// `true` sends `*IDN?`, `false` skips identification.
    Enabled(bool),
    /// This query instead of `*IDN?`.
    Query(String),
}

impl Default for Identify {
    fn default() -> Self {
        Identify::Query("*IDN?".to_string())
    }
}

impl Identify {
    /// The query to send, if any.
    pub fn query(&self) -> Option<&str> {
        match self {
            Identify::Enabled(true) => Some("*IDN?"),
            Identify::Enabled(false) => None,
            Identify::Query(q) => Some(q),
        }
    }
}

/// One channel: a query whose answer becomes one Float64 column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadConfig {
    /// Column name.
    pub channel: String,
    /// The query sent, e.g. `"MEAS:VOLT?"`.
    pub query: String,
    /// Physical unit, written into the column metadata.
    #[serde(default)]
    pub unit: String,
    /// How the answer becomes a number.
    #[serde(default)]
    pub parse: ParseSpec,
}

/// How an answer becomes a number: `"number"`, `{ regex = "...", group = 1 }` or
/// `{ csv = INDEX }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParseSpec {
    /// `"number"`: the whole answer is a number.
    Named(NamedParse),
    /// A regex capture group holds the number.
    Regex {
        /// The pattern (Rust `regex` syntax).
        regex: String,
        /// The capture group holding the number (0 is the whole match).
        #[serde(default = "default_group")]
        group: usize,
    },
    /// Field `csv` (0-based) of a comma-separated answer holds the number.
    Csv {
        /// The field index.
        csv: usize,
    },
}

impl Default for ParseSpec {
    fn default() -> Self {
        ParseSpec::Named(NamedParse::Number)
    }
}

/// Parsers chosen by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedParse {
    /// The whole answer is a number.
    Number,
}

/// A settable parameter, e.g. a power supply's voltage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Command template; `{value}` is replaced by the value, e.g. `"VOLT {value}"`.
    pub command: String,
    /// Query that reads the parameter back, e.g. `"VOLT?"`.
    #[serde(default)]
    pub readback: Option<String>,
    /// How the readback answer becomes a number.
    #[serde(default)]
    pub parse: ParseSpec,
    /// Smallest allowed value; a smaller one is refused before anything is sent.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest allowed value; a larger one is refused before anything is sent.
    #[serde(default)]
    pub max: Option<f64>,
    /// With `readback`: the set succeeds once the readback is within this of the target.
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// With `tolerance`: how long the readback may take to reach the target.
    #[serde(default = "default_settle_timeout", with = "humantime_serde")]
    pub settle_timeout: Duration,
    /// The device answers the set command; the answer is read and logged.
    #[serde(default)]
    pub expect_reply: bool,
    /// With `expect_reply`: a reply matching this regex fails the set.
    #[serde(default)]
    pub error_pattern: Option<String>,
}

impl ScpiInstrumentConfig {
    /// The parsed address.
    pub fn parsed_address(&self) -> Result<Address, super::address::AddressError> {
        self.address.parse()
    }

    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Err(e) = self.parsed_address() {
            problems.push(("address", e.to_string()));
        }
        if self.baud_rate == 0 {
            problems.push(("baud_rate", "must be positive".to_string()));
        }
        if !(5..=8).contains(&self.data_bits) {
            problems.push((
                "data_bits",
                format!("must be 5, 6, 7 or 8, got {}", self.data_bits),
            ));
        }
        if !(1..=2).contains(&self.stop_bits) {
            problems.push((
                "stop_bits",
                format!("must be 1 or 2, got {}", self.stop_bits),
            ));
        }
        if self.read_termination.is_empty() {
            problems.push(("read_termination", "must not be empty".to_string()));
        }
        if self.write_termination.is_empty() {
            problems.push(("write_termination", "must not be empty".to_string()));
        }
        for (key, d) in [
            ("timeout", self.timeout),
            ("poll_interval", self.poll_interval),
            ("batch_interval", self.batch_interval),
            ("reconnect_min", self.reconnect_min),
        ] {
            if d.is_zero() {
                problems.push((key, "must be longer than zero".to_string()));
            }
        }
        if self.reconnect_max < self.reconnect_min {
            problems.push((
                "reconnect_max",
                "must not be shorter than reconnect_min".to_string(),
            ));
        }
        if self.max_batch_rows == 0 {
            problems.push(("max_batch_rows", "must be at least 1".to_string()));
        }
        if matches!(&self.identify, Identify::Query(q) if q.trim().is_empty()) {
            problems.push(("identify", "must be a query, true or false".to_string()));
        }
        let mut seen = HashSet::new();
        for r in &self.read {
            let name = &r.channel;
            if name.is_empty() {
                problems.push(("read.channel", "a channel name is empty".to_string()));
            } else if name == crate::batch::TIMESTAMP_COLUMN || name == crate::batch::SEQ_COLUMN {
                problems.push((
                    "read.channel",
                    format!("`{name}` is reserved for the leading column"),
                ));
            } else if !seen.insert(name) {
                problems.push(("read.channel", format!("channel `{name}` appears twice")));
            }
            if r.query.trim().is_empty() {
                problems.push(("read.query", format!("channel `{name}` has an empty query")));
            }
            check_parse(&r.parse, "read.parse", name, &mut problems);
        }
        for (name, s) in &self.set {
            if !s.command.contains("{value}") {
                problems.push((
                    "set.command",
                    format!("`{name}`: `{}` has no `{{value}}`", s.command),
                ));
            }
            for (key, v) in [
                ("set.min", s.min),
                ("set.max", s.max),
                ("set.tolerance", s.tolerance),
            ] {
                if let Some(v) = v {
                    if !v.is_finite() {
                        problems.push((key, format!("`{name}`: must be a finite number, got {v}")));
                    }
                }
            }
            if let (Some(lo), Some(hi)) = (s.min, s.max) {
                if lo > hi {
                    problems.push(("set.min", format!("`{name}`: min {lo} is above max {hi}")));
                }
            }
            if let Some(t) = s.tolerance {
                if t < 0.0 {
                    problems.push((
                        "set.tolerance",
                        format!("`{name}`: must not be negative, got {t}"),
                    ));
                }
                if s.readback.is_none() {
                    problems.push((
                        "set.tolerance",
                        format!("`{name}`: needs a `readback` query"),
                    ));
                }
            }
            check_parse(&s.parse, "set.parse", name, &mut problems);
            if let Some(p) = &s.error_pattern {
                if let Err(e) = regex::Regex::new(p) {
                    problems.push(("set.error_pattern", format!("`{name}`: invalid regex: {e}")));
                }
                if !s.expect_reply {
                    problems.push((
                        "set.error_pattern",
                        format!("`{name}`: needs `expect_reply = true`"),
                    ));
                }
            }
        }
        problems
    }
}

fn check_parse(
    spec: &ParseSpec,
    key: &'static str,
    name: &str,
    problems: &mut Vec<(&'static str, String)>,
) {
    if let ParseSpec::Regex { regex, group } = spec {
        match regex::Regex::new(regex) {
            Err(e) => problems.push((key, format!("`{name}`: invalid regex: {e}"))),
            Ok(re) if *group >= re.captures_len() => problems.push((
                key,
                format!(
                    "`{name}`: group {group} does not exist (the regex has {} groups)",
                    re.captures_len() - 1
                ),
            )),
            Ok(_) => {}
        }
    }
}

const fn default_baud_rate() -> u32 {
    9600
}
const fn default_data_bits() -> u8 {
    8
}
const fn default_stop_bits() -> u8 {
    1
}
fn default_termination() -> String {
    "\n".to_string()
}
const fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
const fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}
const fn default_max_batch_rows() -> usize {
    1024
}
const fn default_batch_interval() -> Duration {
    Duration::from_millis(100)
}
const fn default_reconnect_min() -> Duration {
    Duration::from_millis(100)
}
const fn default_reconnect_max() -> Duration {
    Duration::from_secs(10)
}
const fn default_group() -> usize {
    1
}
const fn default_settle_timeout() -> Duration {
    Duration::from_secs(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScpiInstrumentConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_and_parse_forms() {
        let cfg = parse(
            r#"
            address = "tcp://127.0.0.1:5025"
            identify = false
            [[read]]
            channel = "a"
            query = "A?"
            [[read]]
            channel = "b"
            query = "B?"
            parse = { regex = 'B=(\S+)' }
            [[read]]
            channel = "c"
            query = "C?"
            parse = { csv = 2 }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.read_termination, "\n");
        assert_eq!(cfg.timeout, Duration::from_secs(1));
        assert_eq!(cfg.identify.query(), None);
        assert_eq!(cfg.read[0].parse, ParseSpec::Named(NamedParse::Number));
        assert_eq!(
            cfg.read[1].parse,
            ParseSpec::Regex {
                regex: r"B=(\S+)".into(),
                group: 1
            }
        );
        assert_eq!(cfg.read[2].parse, ParseSpec::Csv { csv: 2 });
        assert!(cfg.check().is_empty(), "{:?}", cfg.check());
        assert_eq!(
            parse("address = \"x\"\nidentify = \"ID?\"")
                .unwrap()
                .identify
                .query(),
            Some("ID?")
        );
        assert_eq!(
            parse("address = \"x\"").unwrap().identify.query(),
            Some("*IDN?")
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = parse("address = \"tcp://h:1\"\nbaud = 9600")
            .unwrap_err()
            .to_string();
        assert!(e.contains("baud"), "{e}");
        let e = parse(
            "address = \"tcp://h:1\"\n[[read]]\nchannel = \"a\"\nquery = \"A?\"\nunits = \"V\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("units"), "{e}");
    }

    #[test]
    fn check_collects_every_problem() {
        let cfg = parse(
            r#"
            address = "tcp://h"
            data_bits = 9
            timeout = "0s"
            [[read]]
            channel = "seq"
            query = ""
            [[read]]
            channel = "x"
            query = "X?"
            parse = { regex = "(", group = 1 }
            [[read]]
            channel = "x"
            query = "X?"
            parse = { regex = "a", group = 1 }
            [set.v]
            command = "VOLT"
            min = 5.0
            max = 1.0
            tolerance = 0.1
            error_pattern = "ERR"
            "#,
        )
        .unwrap();
        let keys: Vec<_> = cfg.check().into_iter().map(|(k, _)| k).collect();
        for k in [
            "address",
            "data_bits",
            "timeout",
            "read.channel",
            "read.query",
            "read.parse",
            "set.command",
            "set.min",
            "set.tolerance",
            "set.error_pattern",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        assert_eq!(keys.iter().filter(|k| **k == "read.parse").count(), 2);
    }
}
