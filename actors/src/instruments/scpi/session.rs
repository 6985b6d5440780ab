//! The plain, async SCPI session: connect, poll rows, set parameters. No actors in here.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;
use tokio::time::Instant;

use super::address::Address;
use super::config::{ScpiInstrumentConfig, SetConfig};
use super::error::ScpiError;
use super::parse::AnswerParser;
use super::report::{ChannelCounters, Gap, Restore, RestoredSetpoint, SessionReport};
use super::transport::{Transport, TransportError, TransportSettings};
use crate::batch::ChannelSpec;

/// How often a readback is queried while waiting for it to reach its target.
pub const SETTLE_INTERVAL: Duration = Duration::from_millis(50);

/// Most warnings kept in the report; later ones are only logged.
const MAX_WARNINGS: usize = 100;

/// One row: the time the first answer arrived, and one value per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// ns since the Unix epoch, UTC: when the first answer of the row arrived (or when the row
    /// ended, if no answer came).
    pub timestamp_ns: i64,
    /// One value per `[[read]]`, null where the answer timed out or did not parse.
    pub values: Vec<Option<f64>>,
}

struct CompiledRead {
    query: String,
    parser: AnswerParser,
}

struct CompiledSet {
    config: SetConfig,
    parser: AnswerParser,
    error_pattern: Option<Regex>,
}

/// A conversation with one SCPI device.
///
/// ```no_run
/// # async fn demo(config: ensemble_actors::instruments::scpi::ScpiInstrumentConfig) -> Result<(), ensemble_actors::instruments::scpi::ScpiError> {
/// use ensemble_actors::instruments::scpi::{Row, Session};
/// let mut session = Session::new("dmm", config)?;
/// session.connect().await?;
/// let mut row = Row::default();
/// session.poll(&mut row).await?;
/// let reached = session.set("voltage", 1.5).await?;
/// println!("{:?} {reached} {:?}", row.values, session.report());
/// # Ok(()) }
/// ```
///
/// # Connection loss
/// When the connection is lost, [`poll`](Self::poll) returns an error and opens a [`Gap`]; each
/// later `poll` either reconnects (once the exponential backoff has passed, resending `init`)
/// or counts a missed row.
///
/// # Restore after a reconnection
/// The session remembers the value last commanded for every parameter ([`set`](Self::set)).
/// Once a lost connection is back (after `init`), and before anything else is asked of the
/// device, each is sent again and read back (within `tolerance`, as a set is): a device that
/// lost power comes back in the state the plan left it in. Each restore is in the report
/// ([`Restore`]). A restore that fails drops the connection again (the gap stays open) and is
/// tried again at the next reconnection: no row is read from a device in the wrong state.
///
/// # Late answers
/// After a timeout, bytes that arrive before the next command are discarded. An answer later
/// than that is taken for the next query's answer: SCPI has no request ids. Choose `timeout`
/// well above the device's slowest answer.
pub struct Session {
    component: String,
    address: Address,
    settings: TransportSettings,
    config: ScpiInstrumentConfig,
    reads: Vec<CompiledRead>,
    sets: HashMap<String, CompiledSet>,
    transport: Option<Transport>,
    report: SessionReport,
    /// Wait before the next reconnection attempt; doubles per failure up to `reconnect_max`.
    backoff: Duration,
    /// No reconnection attempt before this.
    next_attempt: Option<Instant>,
    /// The gap being recorded (index into `report.gaps`).
    open_gap: Option<usize>,
    /// Identification was attempted once already (it is not repeated on reconnection).
    identified: bool,
    /// The value last commanded per parameter, in the order first set: restored after a
    /// reconnection.
    commanded: Vec<(String, f64)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("component", &self.component)
            .field("address", &self.address)
            .field("connected", &self.transport.is_some())
            .finish()
    }
}

impl Session {
    /// Checks and compiles a config; connects nothing yet.
    pub fn new(
        component: impl Into<String>,
        config: ScpiInstrumentConfig,
    ) -> Result<Self, ScpiError> {
        let problems = config.check();
        if !problems.is_empty() {
            return Err(ScpiError::InvalidConfig(problems));
        }
        let address = config
            .parsed_address()
            .map_err(|e| ScpiError::InvalidConfig(vec![("address", e.to_string())]))?;
        let bad_regex = |e: regex::Error| ScpiError::InvalidConfig(vec![("parse", e.to_string())]);
        let reads = config
            .read
            .iter()
            .map(|r| {
                Ok(CompiledRead {
                    query: r.query.clone(),
                    parser: AnswerParser::new(&r.parse).map_err(bad_regex)?,
                })
            })
            .collect::<Result<Vec<_>, ScpiError>>()?;
        let mut sets = HashMap::new();
        for (name, s) in &config.set {
            let error_pattern = match &s.error_pattern {
                Some(p) => Some(Regex::new(p).map_err(bad_regex)?),
                None => None,
            };
            sets.insert(
                name.clone(),
                CompiledSet {
                    config: s.clone(),
                    parser: AnswerParser::new(&s.parse).map_err(bad_regex)?,
                    error_pattern,
                },
            );
        }
        let report = SessionReport {
            address: address.to_string(),
            channels: config
                .read
                .iter()
                .map(|r| ChannelCounters {
                    channel: r.channel.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        Ok(Self {
            component: component.into(),
            settings: TransportSettings::from_config(&config),
            backoff: config.reconnect_min,
            address,
            config,
            reads,
            sets,
            transport: None,
            report,
            next_attempt: None,
            open_gap: None,
            identified: false,
            commanded: Vec::new(),
        })
    }

    /// The channels of the rows, in column order.
    pub fn channels(&self) -> Vec<ChannelSpec> {
        self.config
            .read
            .iter()
            .map(|r| ChannelSpec::new(&r.channel, &r.unit))
            .collect()
    }

    /// The config the session runs.
    pub fn config(&self) -> &ScpiInstrumentConfig {
        &self.config
    }

    /// True while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.transport.is_some()
    }

    /// What the session did so far.
    pub fn report(&self) -> &SessionReport {
        &self.report
    }

    /// Opens the connection, sends `init`, and (the first time) the identification query.
    ///
    /// Does nothing when already connected. A missing answer to the identification query is
    /// a warning in the report, not an error.
    pub async fn connect(&mut self) -> Result<(), ScpiError> {
        if self.transport.is_some() {
            return Ok(());
        }
        let mut t = Transport::connect(&self.address, self.settings.clone()).await?;
        for command in &self.config.init {
            t.write_line(command).await?;
        }
        if !self.identified {
            self.identified = true;
            if let Some(q) = self.config.identify.query() {
                match t.query(q).await {
                    Ok(answer) => {
                        let id = String::from_utf8_lossy(answer).trim().to_string();
                        tracing::info!(component_id = %self.component, identity = %id, "Identified the device.");
                        self.report.identity = Some(id);
                    }
                    Err(e) if e.is_connection_lost() => return Err(e.into()),
                    Err(e) => self.warn(format!("no answer to identification query `{q}`: {e}")),
                }
            }
        }
        tracing::info!(component_id = %self.component, address = %self.address, "Connected to the device.");
        self.transport = Some(t);
        Ok(())
    }

    /// Reads one row into `row` (cleared first), reconnecting first if the connection is lost.
    ///
    /// `Ok` means the row is filled: a channel whose answer timed out or did not parse is null
    /// and counted. `Err` means there is no row: the device is not connected (the poll counts
    /// as a missed row of the current gap) or the connection was lost during the poll.
    pub async fn poll(&mut self, row: &mut Row) -> Result<(), ScpiError> {
        row.values.clear();
        if self.transport.is_none() {
            self.reconnect().await?;
        }
        let Some(t) = self.transport.as_mut() else {
            return Err(self.not_connected());
        };
        let mut first_answer: Option<i64> = None;
        for (read, counters) in self.reads.iter().zip(self.report.channels.iter_mut()) {
            match t.query(&read.query).await {
                Ok(answer) => {
                    first_answer.get_or_insert_with(now_ns);
                    match read.parser.parse(answer) {
                        Ok(v) => {
                            counters.values += 1;
                            row.values.push(Some(v));
                        }
                        Err(e) if e.is_out_of_range() => {
                            counters.out_of_range += 1;
                            row.values.push(None);
                        }
                        Err(_) => {
                            counters.parse_errors += 1;
                            row.values.push(None);
                        }
                    }
                }
                Err(TransportError::Timeout(_)) => {
                    counters.timeouts += 1;
                    row.values.push(None);
                }
                Err(e) => {
                    row.values.clear();
                    self.lost(&e);
                    return Err(e.into());
                }
            }
        }
        row.timestamp_ns = first_answer.unwrap_or_else(now_ns);
        self.report.rows += 1;
        Ok(())
    }

    /// Sets parameter `param` to `value` and returns the value reached (the readback, when
    /// there is one) or commanded.
    ///
    /// In order: the value is checked against `min`/`max` (refused before anything is sent);
    /// the command is sent; with `expect_reply` the reply is read, logged, and fails the set
    /// when it matches `error_pattern`; with `readback` the parameter is read back, and with
    /// `tolerance` read back every [`SETTLE_INTERVAL`] until it is within tolerance or
    /// `settle_timeout` has passed.
    pub async fn set(&mut self, param: &str, value: f64) -> Result<f64, ScpiError> {
        let result = self.set_inner(param, value).await;
        match &result {
            Ok(_) => self.report.sets_ok += 1,
            Err(e) => {
                self.report.sets_failed += 1;
                if let ScpiError::Transport(t) = e {
                    if t.is_connection_lost() {
                        self.lost(t);
                    }
                }
            }
        }
        // The state to come back to: a value the device took, or one the connection was lost
        // under (a refused or unsettled value is not put back).
        if result.is_ok() || result.as_ref().is_err_and(ScpiError::is_connection_lost) {
            match self.commanded.iter_mut().find(|(p, _)| p == param) {
                Some((_, v)) => *v = value,
                None => self.commanded.push((param.to_string(), value)),
            }
        }
        result
    }

    async fn set_inner(&mut self, param: &str, value: f64) -> Result<f64, ScpiError> {
        let Some(limits) = self.sets.get(param).map(|s| (s.config.min, s.config.max)) else {
            let mut known: Vec<String> = self.sets.keys().cloned().collect();
            known.sort();
            return Err(ScpiError::UnknownParam {
                param: param.to_string(),
                known,
            });
        };
        let (min, max) = limits;
        if !value.is_finite() || min.is_some_and(|m| value < m) || max.is_some_and(|m| value > m) {
            return Err(ScpiError::OutOfLimits {
                param: param.to_string(),
                value,
                min,
                max,
            });
        }
        if self.transport.is_none() {
            self.connect().await?;
            self.reconnected().await?;
        }
        self.send_set(param, value).await
    }

    /// Sends the set command of `param` on the open connection, then reads its reply and its
    /// readback as configured; the value reached.
    async fn send_set(&mut self, param: &str, value: f64) -> Result<f64, ScpiError> {
        let component = &self.component;
        let (Some(t), Some(set)) = (self.transport.as_mut(), self.sets.get(param)) else {
            return Err(ScpiError::NotConnected {
                address: self.address.to_string(),
            });
        };
        let c = &set.config;
        let command = c.command.replace("{value}", &value.to_string());
        t.write_line(&command).await?;
        if c.expect_reply {
            let reply = String::from_utf8_lossy(t.read_line().await?)
                .trim()
                .to_string();
            tracing::info!(component_id = %component, param, command = %command, reply = %reply, "The device replied to a set.");
            if set
                .error_pattern
                .as_ref()
                .is_some_and(|re| re.is_match(&reply))
            {
                return Err(ScpiError::Rejected {
                    param: param.to_string(),
                    reply,
                });
            }
        }
        let Some(readback) = &c.readback else {
            return Ok(value);
        };
        let started = Instant::now();
        let mut last = None;
        loop {
            let parsed = set.parser.parse(t.query(readback).await?);
            match (parsed, c.tolerance) {
                (Ok(v), None) => return Ok(v),
                (Err(error), None) => {
                    return Err(ScpiError::Readback {
                        param: param.to_string(),
                        error,
                    });
                }
                (Ok(v), Some(tol)) if (v - value).abs() <= tol => return Ok(v),
                (Ok(v), Some(_)) => last = Some(v),
                (Err(_), Some(_)) => {}
            }
            if started.elapsed() >= c.settle_timeout {
                return Err(ScpiError::NotSettled {
                    param: param.to_string(),
                    target: value,
                    last,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(SETTLE_INTERVAL.min(c.settle_timeout)).await;
        }
    }

    /// Closes the connection (no gap is recorded: the close is on purpose).
    pub fn disconnect(&mut self) {
        self.transport = None;
    }

    /// When the next reconnection may be tried (`None`: now), while disconnected.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.next_attempt
    }

    /// Reconnects now if disconnected, whatever the backoff says (the caller waited for
    /// [`next_attempt`](Self::next_attempt)), restoring the commanded setpoints; no row is
    /// counted as missed. A failure sets the next backoff.
    pub async fn reconnect_now(&mut self) -> Result<(), ScpiError> {
        if self.transport.is_some() {
            return Ok(());
        }
        self.open_backing_off().await?;
        self.restored().await
    }

    /// Tries to reconnect if the backoff allows; counts a missed row otherwise or when the
    /// connection cannot be opened.
    async fn reconnect(&mut self) -> Result<(), ScpiError> {
        if self.next_attempt.is_some_and(|at| Instant::now() < at) {
            self.miss_row();
            return Err(self.not_connected());
        }
        if let Err(e) = self.open_backing_off().await {
            self.miss_row();
            return Err(e);
        }
        self.restored().await
    }

    /// Opens the connection; a failure sets the next backoff.
    async fn open_backing_off(&mut self) -> Result<(), ScpiError> {
        let opened = self.connect().await;
        if opened.is_err() {
            self.back_off();
        }
        opened
    }

    /// On a connection just opened by a reconnection: restores the setpoints
    /// ([`reconnected`](Self::reconnected)), then resets the backoff.
    async fn restored(&mut self) -> Result<(), ScpiError> {
        self.reconnected().await?;
        self.backoff = self.config.reconnect_min;
        self.next_attempt = None;
        Ok(())
    }

    /// Drops the connection and waits `backoff` before the next attempt, doubling it (up to
    /// `reconnect_max`) for the one after.
    fn back_off(&mut self) {
        self.transport = None;
        self.next_attempt = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.reconnect_max);
    }

    /// Called once a connection is open again: if a gap was open, restores the commanded
    /// setpoints, then closes the gap. A restore that fails drops the connection again (the
    /// gap stays open, the next attempt waits for the backoff) and returns why.
    async fn reconnected(&mut self) -> Result<(), ScpiError> {
        if self.open_gap.is_none() {
            return Ok(());
        }
        if !self.commanded.is_empty() {
            let restore = self.restore().await;
            let ok = restore.ok;
            let failed = restore
                .setpoints
                .iter()
                .find_map(|s| s.error.clone().map(|e| (s.param.clone(), s.value, e)));
            let what = restore.describe();
            self.report.restores.push(restore);
            if let Some((param, value, reason)) = failed.filter(|_| !ok) {
                tracing::warn!(component_id = %self.component, "Reconnected, but could not restore the setpoints ({what}); reconnecting.");
                self.back_off();
                return Err(ScpiError::RestoreFailed {
                    param,
                    value,
                    reason,
                });
            }
            tracing::info!(component_id = %self.component, "Restored the setpoints after reconnecting: {what}.");
        }
        if self.close_gap() {
            self.report.reconnects += 1;
        }
        Ok(())
    }

    /// Sends every commanded setpoint again and reads it back, stopping at the first failure.
    async fn restore(&mut self) -> Restore {
        let at_ns = now_ns();
        let commanded = self.commanded.clone();
        let mut setpoints = Vec::with_capacity(commanded.len());
        for (param, value) in commanded {
            let (reached, error) = match self.send_set(&param, value).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let failed = error.is_some();
            setpoints.push(RestoredSetpoint {
                param,
                value,
                reached,
                error,
            });
            if failed || self.transport.is_none() {
                break;
            }
        }
        let ok =
            setpoints.len() == self.commanded.len() && setpoints.iter().all(|s| s.error.is_none());
        Restore {
            at_ns,
            setpoints,
            ok,
        }
    }

    /// Records a lost connection: drops the transport and opens a gap (once).
    fn lost(&mut self, why: &TransportError) {
        self.transport = None;
        self.next_attempt = Some(Instant::now() + self.backoff);
        if self.open_gap.is_none() {
            tracing::warn!(component_id = %self.component, address = %self.address, error = %why, "Lost the connection to the device; reconnecting.");
            self.report.gaps.push(Gap {
                start_ns: now_ns(),
                end_ns: None,
                rows_missed: 0,
                reason: why.to_string(),
            });
            self.open_gap = Some(self.report.gaps.len() - 1);
        }
        self.miss_row();
    }

    /// Ends the open gap, if any; true if there was one.
    fn close_gap(&mut self) -> bool {
        let Some(i) = self.open_gap.take() else {
            return false;
        };
        let gap = &mut self.report.gaps[i];
        gap.end_ns = Some(now_ns());
        tracing::info!(component_id = %self.component, rows_missed = gap.rows_missed, "Reconnected to the device.");
        true
    }

    fn miss_row(&mut self) {
        if let Some(i) = self.open_gap {
            self.report.gaps[i].rows_missed += 1;
        }
    }

    fn not_connected(&self) -> ScpiError {
        ScpiError::NotConnected {
            address: self.address.to_string(),
        }
    }

    fn warn(&mut self, message: String) {
        tracing::warn!(component_id = %self.component, "{message}.");
        if self.report.warnings.len() < MAX_WARNINGS {
            self.report.warnings.push(message);
        }
    }
}

/// Now, in ns since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
