//! Fault injection for the SCPI simulator, parsed from `key=value` lists.

use std::str::FromStr;
use std::time::Duration;

/// Faults a simulator connection injects. All off by default.
///
/// Written as a comma-separated list for the CLI:
///
/// ```
/// use ensemble_actors::simulator::FaultSpec;
/// let f = FaultSpec::parse("garbage=0.1, delay=50ms,disconnect-after=100").unwrap();
/// assert_eq!(f.garbage, 0.1);
/// assert_eq!(f.delay, Some(std::time::Duration::from_millis(50)));
/// assert_eq!(f.disconnect_after, Some(100));
/// assert_eq!(f.stall_after, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// Close the connection after this many answers on it, as a device that lost power: its
    /// settings go back to their power-on values (on a pseudo-terminal, which cannot be closed
    /// from the device side, the simulator stops answering instead).
    pub disconnect_after: Option<u64>,
    /// Probability (0 to 1) that an answer is replaced by garbage (still terminated).
    pub garbage: f64,
    /// Every answer is delayed by this long.
    pub delay: Option<Duration>,
    /// Stop answering after this many answers on a connection, keeping it open.
    pub stall_after: Option<u64>,
}

/// A fault list that could not be parsed; names the offending item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    /// An item is not `key=value`.
    #[error("fault `{0}` is not of the form key=value")]
    NotKeyValue(String),
    /// An unknown key.
    #[error("unknown fault `{0}`; known: disconnect-after, garbage, delay, stall-after")]
    UnknownKey(String),
    /// A value that does not fit its key.
    #[error("invalid value `{value}` for fault `{key}`: {expected}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl FaultSpec {
    /// Parses `key=value[,key=value...]`; an empty string means no faults.
    pub fn parse(text: &str) -> Result<Self, FaultSpecError> {
        let mut spec = FaultSpec::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| FaultSpecError::NotKeyValue(item.to_string()))?;
            let (key, value) = (key.trim(), value.trim());
            let invalid = |expected| FaultSpecError::InvalidValue {
                key: key.to_string(),
                value: value.to_string(),
                expected,
            };
            match key.replace('_', "-").as_str() {
                "disconnect-after" => {
                    spec.disconnect_after = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("a whole number of answers"))?,
                    )
                }
                "stall-after" => {
                    spec.stall_after = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("a whole number of answers"))?,
                    )
                }
                "garbage" => {
                    let p: f64 = value
                        .parse()
                        .map_err(|_| invalid("a probability from 0 to 1"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(invalid("a probability from 0 to 1"));
                    }
                    spec.garbage = p;
                }
                "delay" => {
                    spec.delay = Some(
                        humantime::parse_duration(value)
                            .map_err(|_| invalid("a duration like 50ms"))?,
                    )
                }
                _ => return Err(FaultSpecError::UnknownKey(key.to_string())),
            }
        }
        Ok(spec)
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_rejects_bad_input() {
        let f = FaultSpec::parse("stall-after=3,garbage=1").unwrap();
        assert_eq!(f.stall_after, Some(3));
        assert_eq!(f.garbage, 1.0);
        assert_eq!(FaultSpec::parse("").unwrap(), FaultSpec::default());
        assert_eq!(
            FaultSpec::parse("garbage"),
            Err(FaultSpecError::NotKeyValue("garbage".into()))
        );
        assert_eq!(
            FaultSpec::parse("explode=1"),
            Err(FaultSpecError::UnknownKey("explode".into()))
        );
        assert!(matches!(
            FaultSpec::parse("garbage=2"),
            Err(FaultSpecError::InvalidValue { .. })
        ));
        assert!(matches!(
            FaultSpec::parse("delay=soon"),
            Err(FaultSpecError::InvalidValue { .. })
        ));
        assert!(matches!(
            FaultSpec::parse("disconnect-after=-1"),
            Err(FaultSpecError::InvalidValue { .. })
        ));
    }
}
