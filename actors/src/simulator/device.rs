//! The simulated devices' state and command interpreter: plain, synchronous, clock passed in.

use std::collections::VecDeque;
use std::f64::consts::TAU;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which device the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Digital multimeter: `MEAS:VOLT:DC?`, `MEAS:RES?`, `MEAS:CURR:DC?`, `CONF:...`, `READ?`;
    /// `SIM:OPEN ON` opens the leads, so resistance reads overload (`9.9E37`).
    #[default]
    Dmm,
    /// Power supply with a 10 Ω load: `VOLT <v>`, `VOLT?`, `CURR <a>`, `CURR?`, `OUTP ON|OFF`,
    /// `OUTP?`, `MEAS:VOLT?`, `MEAS:CURR?`.
    Psu,
    /// Temperature controller: `TEMP?`, `TEMP:SETP <K>`, `TEMP:SETP?`; the temperature
    /// approaches the setpoint exponentially.
    Tempctl,
}

/// An unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown simulator profile `{0}`; known: dmm, psu, tempctl")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "dmm" => Ok(Profile::Dmm),
            "psu" => Ok(Profile::Psu),
            "tempctl" => Ok(Profile::Tempctl),
            _ => Err(UnknownProfile(s.to_string())),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Dmm => "dmm",
            Profile::Psu => "psu",
            Profile::Tempctl => "tempctl",
        })
    }
}

/// Load resistance of the simulated power supply, Ω.
pub const PSU_LOAD_OHMS: f64 = 10.0;
/// Ambient (and power-on) temperature of the temperature controller, K.
pub const AMBIENT_K: f64 = 295.0;
const ERROR_QUEUE_LEN: usize = 20;

/// A deterministic random source (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DmmFunction {
    Volt,
    Res,
    Curr,
}

/// One simulated device: its state, physics, and error queue.
///
/// Shared by all connections of a server, like a real instrument with several clients.
#[derive(Debug, Clone)]
pub struct Device {
    profile: Profile,
    rng: Rng,
    /// Time constant of the temperature controller.
    tau: Duration,
    errors: VecDeque<&'static str>,
    dmm_function: DmmFunction,
    /// No resistor between the DMM's leads: resistance reads overload (`9.9E37`).
    dmm_open: bool,
    psu_volt: f64,
    psu_curr: f64,
    psu_on: bool,
    /// Temperature at `temp_t0` (since the device started), and the setpoint it approaches.
    temp_t0: Duration,
    temp_at_t0: f64,
    setpoint: f64,
}

impl Device {
    /// A device in its power-on state; `tau` is the temperature controller's time constant.
    pub fn new(profile: Profile, seed: u64, tau: Duration) -> Self {
        let mut d = Self {
            profile,
            rng: Rng::new(seed),
            tau,
            errors: VecDeque::new(),
            dmm_function: DmmFunction::Volt,
            dmm_open: false,
            psu_volt: 0.0,
            psu_curr: 1.0,
            psu_on: false,
            temp_t0: Duration::ZERO,
            temp_at_t0: AMBIENT_K,
            setpoint: AMBIENT_K,
        };
        d.reset(Duration::ZERO);
        d
    }

    fn reset(&mut self, now: Duration) {
        self.dmm_function = DmmFunction::Volt;
        self.psu_volt = 0.0;
        self.psu_curr = 1.0;
        self.psu_on = false;
        // A reset does not change the physical temperature, only the setpoint (the
        // temperature goes on from where it is now).
        self.temp_at_t0 = self.temperature(now);
        self.temp_t0 = now;
        self.setpoint = AMBIENT_K;
    }

    /// Turns the device off and on again `now` after it started: every setting goes back to
    /// its power-on value (as `*RST`), the error queue is emptied and the DMM's leads are
    /// closed; the physical temperature goes on from where it is.
    pub fn power_cycle(&mut self, now: Duration) {
        self.reset(now);
        self.errors.clear();
        self.dmm_open = false;
    }

    /// The temperature `now` after the device started.
    pub fn temperature(&self, now: Duration) -> f64 {
        let dt = now.saturating_sub(self.temp_t0).as_secs_f64();
        let tau = self.tau.as_secs_f64().max(1e-9);
        self.setpoint + (self.temp_at_t0 - self.setpoint) * (-dt / tau).exp()
    }

    /// Handles one line of commands (`;`-separated) received `now` after the device started,
    /// and returns the answer line (answers of several queries joined by `;`), if any query
    /// was in it. Unknown commands go to the error queue (`SYST:ERR?`).
    pub fn handle_line(&mut self, line: &str, now: Duration) -> Option<String> {
        let mut answers: Vec<String> = Vec::new();
        for command in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let (header, arg) = match command.split_once(char::is_whitespace) {
                Some((h, a)) => (h, Some(a.trim())),
                None => (command, None),
            };
            let header = normalize(header);
            match self.execute(&header, arg, now) {
                Ok(Some(answer)) => answers.push(answer),
                Ok(None) => {}
                Err(e) => self.push_error(e),
            }
        }
        if answers.is_empty() {
            None
        } else {
            Some(answers.join(";"))
        }
    }

    fn push_error(&mut self, e: &'static str) {
        if self.errors.len() < ERROR_QUEUE_LEN {
            self.errors.push_back(e);
        }
    }

    fn execute(
        &mut self,
        header: &str,
        arg: Option<&str>,
        now: Duration,
    ) -> Result<Option<String>, &'static str> {
        const UNDEFINED: &str = "-113,\"Undefined header\"";
        let common = match header {
            "*IDN?" => Some(format!(
                "Ensemble,SIM-{},0,1.0",
                self.profile.to_string().to_uppercase()
            )),
            "*RST" => {
                self.reset(now);
                return Ok(None);
            }
            "*CLS" => {
                self.errors.clear();
                return Ok(None);
            }
            "*OPC?" => Some("1".to_string()),
            "SYST:ERR?" | "SYST:ERR:NEXT?" => Some(
                self.errors
                    .pop_front()
                    .unwrap_or("0,\"No error\"")
                    .to_string(),
            ),
            _ => None,
        };
        if common.is_some() {
            return Ok(common);
        }
        match self.profile {
            Profile::Dmm => {
                let volt = 1.0
                    + 0.01 * (TAU * now.as_secs_f64() / 10.0).sin()
                    + 1e-4 * self.rng.gaussian();
                let res = if self.dmm_open {
                    9.9e37
                } else {
                    1000.0 + 0.01 * self.rng.gaussian()
                };
                let curr = 1e-3 + 1e-7 * self.rng.gaussian();
                match header {
                    "MEAS:VOLT:DC?" | "MEAS:VOLT?" => Ok(Some(nr3(volt))),
                    "MEAS:RES?" => Ok(Some(nr3(res))),
                    "MEAS:CURR:DC?" | "MEAS:CURR?" => Ok(Some(nr3(curr))),
                    "CONF:VOLT:DC" | "CONF:VOLT" => {
                        self.dmm_function = DmmFunction::Volt;
                        Ok(None)
                    }
                    "CONF:RES" => {
                        self.dmm_function = DmmFunction::Res;
                        Ok(None)
                    }
                    "CONF:CURR:DC" | "CONF:CURR" => {
                        self.dmm_function = DmmFunction::Curr;
                        Ok(None)
                    }
                    "SIM:OPEN" => {
                        self.dmm_open = on_off(arg)?;
                        Ok(None)
                    }
                    "CONF?" => Ok(Some(
                        match self.dmm_function {
                            DmmFunction::Volt => "\"VOLT\"",
                            DmmFunction::Res => "\"RES\"",
                            DmmFunction::Curr => "\"CURR\"",
                        }
                        .to_string(),
                    )),
                    "READ?" => Ok(Some(nr3(match self.dmm_function {
                        DmmFunction::Volt => volt,
                        DmmFunction::Res => res,
                        DmmFunction::Curr => curr,
                    }))),
                    _ => Err(UNDEFINED),
                }
            }
            Profile::Psu => {
                let v_out = if self.psu_on {
                    self.psu_volt.min(self.psu_curr * PSU_LOAD_OHMS)
                } else {
                    0.0
                };
                match header {
                    "VOLT" => {
                        self.psu_volt = number(arg, 0.0, 30.0)?;
                        Ok(None)
                    }
                    "VOLT?" => Ok(Some(nr3(self.psu_volt))),
                    "CURR" => {
                        self.psu_curr = number(arg, 0.0, 3.0)?;
                        Ok(None)
                    }
                    "CURR?" => Ok(Some(nr3(self.psu_curr))),
                    "OUTP" => {
                        self.psu_on = on_off(arg)?;
                        Ok(None)
                    }
                    "OUTP?" => Ok(Some(if self.psu_on { "1" } else { "0" }.to_string())),
                    "MEAS:VOLT?" => Ok(Some(nr3(v_out + 5e-4 * self.rng.gaussian()))),
                    "MEAS:CURR?" => Ok(Some(nr3(
                        v_out / PSU_LOAD_OHMS + 1e-5 * self.rng.gaussian()
                    ))),
                    _ => Err(UNDEFINED),
                }
            }
            Profile::Tempctl => match header {
                "TEMP?" => Ok(Some(
                    nr3(self.temperature(now) + 0.01 * self.rng.gaussian()),
                )),
                "TEMP:SETP" => {
                    let v = number(arg, 0.0, 1000.0)?;
                    self.temp_at_t0 = self.temperature(now);
                    self.temp_t0 = now;
                    self.setpoint = v;
                    Ok(None)
                }
                "TEMP:SETP?" => Ok(Some(nr3(self.setpoint))),
                _ => Err(UNDEFINED),
            },
        }
    }
}

/// Parses a numeric argument within `[lo, hi]`, or names the SCPI error.
fn number(arg: Option<&str>, lo: f64, hi: f64) -> Result<f64, &'static str> {
    let arg = arg.ok_or("-109,\"Missing parameter\"")?;
    let v: f64 = arg
        .parse()
        .map_err(|_| "-224,\"Illegal parameter value\"")?;
    if !v.is_finite() || v < lo || v > hi {
        return Err("-222,\"Data out of range\"");
    }
    Ok(v)
}

/// Parses `ON`/`OFF`/`1`/`0`, or names the SCPI error.
fn on_off(arg: Option<&str>) -> Result<bool, &'static str> {
    match arg.map(str::to_ascii_uppercase).as_deref() {
        Some("ON" | "1") => Ok(true),
        Some("OFF" | "0") => Ok(false),
        None => Err("-109,\"Missing parameter\""),
        Some(_) => Err("-224,\"Illegal parameter value\""),
    }
}

/// Long SCPI mnemonics to their short forms; case-insensitive, leading `:` dropped.
fn normalize(header: &str) -> String {
    let upper = header.trim_start_matches(':').to_ascii_uppercase();
    let (body, query) = match upper.strip_suffix('?') {
        Some(b) => (b, "?"),
        None => (upper.as_str(), ""),
    };
    let mut out = String::with_capacity(body.len() + 1);
    for (i, seg) in body.split(':').enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(match seg {
            "MEASURE" => "MEAS",
            "VOLTAGE" => "VOLT",
            "CURRENT" => "CURR",
            "RESISTANCE" => "RES",
            "TEMPERATURE" => "TEMP",
            "SETPOINT" => "SETP",
            "SYSTEM" => "SYST",
            "ERROR" => "ERR",
            "OUTPUT" => "OUTP",
            "CONFIGURE" => "CONF",
            other => other,
        });
    }
    out.push_str(query);
    out
}

/// Formats like an SCPI `<NR3>`: `+1.234560E-03`.
pub fn nr3(v: f64) -> String {
    let s = format!("{v:+.6E}");
    match s.split_once('E') {
        Some((mantissa, exp)) => {
            let e: i32 = exp.parse().unwrap_or(0);
            format!("{mantissa}E{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nr3_looks_like_scpi() {
        assert_eq!(nr3(1.23456e-3), "+1.234560E-03");
        assert_eq!(nr3(-295.0), "-2.950000E+02");
        assert_eq!(nr3(0.0), "+0.000000E+00");
    }

    #[test]
    fn a_power_cycle_forgets_the_settings_but_not_the_temperature() {
        let t = Duration::from_secs(1);
        let mut psu = Device::new(Profile::Psu, 1, Duration::from_secs(1));
        assert_eq!(psu.handle_line("VOLT 5;OUTP ON;BOGUS", t), None);
        psu.power_cycle(t);
        assert_eq!(
            psu.handle_line("VOLT?;OUTP?;SYST:ERR?", t).as_deref(),
            Some("+0.000000E+00;0;0,\"No error\"")
        );
        let mut cryo = Device::new(Profile::Tempctl, 1, Duration::from_secs(1));
        assert_eq!(cryo.handle_line("TEMP:SETP 400", Duration::ZERO), None);
        let before = cryo.temperature(t);
        assert!(before > AMBIENT_K + 50.0, "{before}");
        cryo.power_cycle(t);
        assert_eq!(
            cryo.temperature(t),
            before,
            "no jump in the physical temperature"
        );
        assert_eq!(
            cryo.handle_line("TEMP:SETP?", t).as_deref(),
            Some(nr3(AMBIENT_K).as_str())
        );
    }

    #[test]
    fn psu_sets_measures_and_queues_errors() {
        let mut d = Device::new(Profile::Psu, 1, Duration::from_secs(1));
        let t = Duration::ZERO;
        assert!(d.handle_line("*IDN?", t).unwrap().contains("SIM-PSU"));
        assert_eq!(d.handle_line("VOLTage 5;OUTP ON", t), None);
        assert_eq!(d.handle_line("volt?", t).as_deref(), Some("+5.000000E+00"));
        let v: f64 = d.handle_line("MEAS:VOLT?", t).unwrap().parse().unwrap();
        assert!((v - 5.0).abs() < 0.01, "{v}");
        let i: f64 = d.handle_line("MEAS:CURR?", t).unwrap().parse().unwrap();
        assert!((i - 0.5).abs() < 0.001, "{i}");
        assert_eq!(d.handle_line("VOLT 99", t), None);
        assert_eq!(d.handle_line("BOGUS?", t), None);
        assert_eq!(
            d.handle_line("SYST:ERR?", t).as_deref(),
            Some("-222,\"Data out of range\"")
        );
        assert_eq!(
            d.handle_line("SYST:ERR?", t).as_deref(),
            Some("-113,\"Undefined header\"")
        );
        assert_eq!(
            d.handle_line("SYST:ERR?", t).as_deref(),
            Some("0,\"No error\"")
        );
        assert_eq!(
            d.handle_line("*RST;OUTP?;VOLT?", t).as_deref(),
            Some("0;+0.000000E+00")
        );
    }

    #[test]
    fn temperature_approaches_setpoint_exponentially() {
        let tau = Duration::from_secs(2);
        let mut d = Device::new(Profile::Tempctl, 1, tau);
        d.handle_line("TEMP:SETP 305", Duration::from_secs(1));
        assert_eq!(d.temperature(Duration::from_secs(1)), AMBIENT_K);
        let one_tau = d.temperature(Duration::from_secs(3));
        assert!(
            (one_tau - (305.0 - 10.0 * (-1f64).exp())).abs() < 1e-9,
            "{one_tau}"
        );
        assert!((d.temperature(Duration::from_secs(100)) - 305.0).abs() < 1e-6);
        assert_eq!(
            d.handle_line("TEMP:SETP?", Duration::ZERO).as_deref(),
            Some("+3.050000E+02")
        );
    }

    #[test]
    fn dmm_read_follows_configure_and_same_seed_same_values() {
        let mut a = Device::new(Profile::Dmm, 9, Duration::from_secs(1));
        let mut b = Device::new(Profile::Dmm, 9, Duration::from_secs(1));
        let t = Duration::from_millis(250);
        assert_eq!(
            a.handle_line("MEAS:VOLT:DC?", t),
            b.handle_line("MEAS:VOLT:DC?", t)
        );
        a.handle_line("CONF:RES", t);
        let r: f64 = a.handle_line("READ?", t).unwrap().parse().unwrap();
        assert!((r - 1000.0).abs() < 1.0);
    }
}
