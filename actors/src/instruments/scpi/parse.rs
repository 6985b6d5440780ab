//! Answer parsers: turn one line from the device into one number, or say why not.
//!
//! Parsers never panic, whatever the device sends (a property test feeds them arbitrary bytes).
//! The number grammar accepts the SCPI `<NR1>`, `<NR2>` and `<NR3>` forms (`42`, `-0.5`,
//! `+1.234E-03`), surrounded by whitespace; `inf` and `nan` spellings are refused. SCPI's
//! overflow value `9.9E37` (and anything at least that large, or beyond `f64`) is
//! [`ParseError::OutOfRange`], recorded as null.

use regex::Regex;

use super::config::ParseSpec;

/// Magnitude from which a number is SCPI's overflow marker (`9.9E37`, or `9.91E37` for "not a
/// number"), not a measurement.
pub const SCPI_OVERFLOW: f64 = 9.9e37;

/// Why an answer gave no number. Small and `Copy`: it is created on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The answer was empty (or only whitespace).
    #[error("the answer is empty")]
    Empty,
    /// The answer (or the selected part of it) is not valid UTF-8.
    #[error("the answer is not valid UTF-8")]
    NotText,
    /// The text is not a number.
    #[error("the answer is not a number")]
    NotANumber,
    /// The device reported overflow (`9.9E37`), or the number does not fit an `f64`.
    #[error("the value is out of range (SCPI overflow)")]
    OutOfRange,
    /// The regex did not match the answer.
    #[error("the regex did not match the answer")]
    NoMatch,
    /// The regex matched but the capture group took no part in the match.
    #[error("capture group {0} did not take part in the match")]
    MissingGroup(usize),
    /// The answer has fewer comma-separated fields than the index needs.
    #[error("the answer has no field {index} (it has {fields})")]
    MissingField {
        /// The configured field index (0-based).
        index: usize,
        /// How many fields the answer had.
        fields: usize,
    },
}

impl ParseError {
    /// True when the device answered with an overflow marker rather than something unparsable;
    /// sessions count the two apart (`out_of_range` versus `parse_errors`).
    pub fn is_out_of_range(self) -> bool {
        matches!(self, ParseError::OutOfRange)
    }
}

/// A compiled answer parser, built once from a [`ParseSpec`] and reused for every answer.
#[derive(Debug, Clone)]
pub enum AnswerParser {
    /// The whole answer is one number.
    Number,
    /// A capture group of a regex holds the number.
    Regex {
        /// The compiled pattern.
        regex: Regex,
        /// The capture group (0 is the whole match).
        group: usize,
    },
    /// Field `index` (0-based) of a comma-separated answer holds the number.
    Csv(usize),
}

impl AnswerParser {
    /// Compiles a parser spec; fails only on an invalid regex.
    pub fn new(spec: &ParseSpec) -> Result<Self, regex::Error> {
        Ok(match spec {
            ParseSpec::Named(_) => AnswerParser::Number,
            ParseSpec::Regex { regex, group } => AnswerParser::Regex {
                regex: Regex::new(regex)?,
                group: *group,
            },
            ParseSpec::Csv { csv } => AnswerParser::Csv(*csv),
        })
    }

    /// Parses one answer line (without its termination).
    pub fn parse(&self, answer: &[u8]) -> Result<f64, ParseError> {
        let text = std::str::from_utf8(answer).map_err(|_| ParseError::NotText)?;
        match self {
            AnswerParser::Number => parse_number(text),
            AnswerParser::Regex { regex, group } => {
                let caps = regex.captures(text).ok_or(ParseError::NoMatch)?;
                let m = caps.get(*group).ok_or(ParseError::MissingGroup(*group))?;
                parse_number(m.as_str())
            }
            AnswerParser::Csv(index) => match text.split(',').nth(*index) {
                Some(field) => parse_number(field),
                None => Err(ParseError::MissingField {
                    index: *index,
                    fields: text.split(',').count(),
                }),
            },
        }
    }
}

/// Parses a SCPI number (`<NR1>`, `<NR2>`, `<NR3>`), trimming whitespace and one pair of quotes.
///
/// ```
/// use ensemble_actors::instruments::scpi::{parse_number, ParseError};
/// assert_eq!(parse_number(" +1.234E-03\r"), Ok(1.234e-3));
/// assert_eq!(parse_number("9.9E37"), Err(ParseError::OutOfRange));
/// assert_eq!(parse_number("NaN"), Err(ParseError::NotANumber));
/// ```
pub fn parse_number(text: &str) -> Result<f64, ParseError> {
    let mut t = text.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        t = t[1..t.len() - 1].trim();
    }
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    // Only digits, signs, a point and an exponent: refuses "inf", "nan", "0x10" and the like,
    // which `f64::from_str` would otherwise accept in part.
    if !t.bytes().any(|b| b.is_ascii_digit())
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return Err(ParseError::NotANumber);
    }
    let v: f64 = t.parse().map_err(|_| ParseError::NotANumber)?;
    if !v.is_finite() || v.abs() >= SCPI_OVERFLOW {
        return Err(ParseError::OutOfRange);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn regex(p: &str, group: usize) -> AnswerParser {
        AnswerParser::Regex {
            regex: Regex::new(p).unwrap(),
            group,
        }
    }

    #[test]
    fn numbers_in_scpi_forms() {
        assert_eq!(parse_number("42"), Ok(42.0));
        assert_eq!(parse_number("-0.5"), Ok(-0.5));
        assert_eq!(parse_number("+1.234E-03"), Ok(1.234e-3));
        assert_eq!(parse_number("  1.0e+02 \r\n"), Ok(100.0));
        assert_eq!(parse_number("\"3.5\""), Ok(3.5));
        assert_eq!(parse_number(".5"), Ok(0.5));
    }

    #[test]
    fn overflow_and_junk_are_told_apart() {
        assert_eq!(parse_number("9.9E37"), Err(ParseError::OutOfRange));
        assert_eq!(parse_number("-9.91E+37"), Err(ParseError::OutOfRange));
        assert_eq!(parse_number("1e999"), Err(ParseError::OutOfRange));
        assert_eq!(parse_number(""), Err(ParseError::Empty));
        assert_eq!(parse_number("inf"), Err(ParseError::NotANumber));
        assert_eq!(parse_number("NaN"), Err(ParseError::NotANumber));
        assert_eq!(parse_number("1.2.3"), Err(ParseError::NotANumber));
        assert_eq!(parse_number("+-"), Err(ParseError::NotANumber));
        assert_eq!(parse_number("1.5 V"), Err(ParseError::NotANumber));
    }

    #[test]
    fn regex_and_csv_select_a_part() {
        let r = regex(r"T=([-+0-9.eE]+)K", 1);
        assert_eq!(r.parse(b"T=293.5K"), Ok(293.5));
        assert_eq!(r.parse(b"nothing"), Err(ParseError::NoMatch));
        let optional = regex(r"a(b)?", 1);
        assert_eq!(optional.parse(b"a"), Err(ParseError::MissingGroup(1)));
        let high = regex(r"a", 3);
        assert_eq!(high.parse(b"a"), Err(ParseError::MissingGroup(3)));
        let c = AnswerParser::Csv(2);
        assert_eq!(c.parse(b"+1.0E+00,+2.0E+00,+3.5E+00"), Ok(3.5));
        assert_eq!(
            c.parse(b"1,2"),
            Err(ParseError::MissingField {
                index: 2,
                fields: 2
            })
        );
        assert_eq!(
            AnswerParser::Number.parse(&[0xff, 0x31]),
            Err(ParseError::NotText)
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                        index in 0usize..8, group in 0usize..4) {
            for p in [AnswerParser::Number, AnswerParser::Csv(index),
                      regex(r"([-+0-9.eE]+)\s*(\w*)", group)] {
                let _ = p.parse(&bytes);
            }
        }

        #[test]
        fn parsers_never_panic_on_text(text in "\\PC{0,40}", num in "[-+0-9.eE, \"]{0,24}") {
            for p in [AnswerParser::Number, AnswerParser::Csv(1), regex(r"(\d+)", 1)] {
                let _ = p.parse(text.as_bytes());
                let _ = p.parse(num.as_bytes());
            }
        }

        #[test]
        fn finite_numbers_round_trip(v in -1e30f64..1e30) {
            prop_assert_eq!(parse_number(&format!("{v:E}")), Ok(v));
            prop_assert_eq!(parse_number(&format!("{v}")), Ok(v));
        }
    }
}
