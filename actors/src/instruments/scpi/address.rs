//! Where an SCPI instrument is: a TCP socket or a serial port, parsed from the config string.
//!
//! Accepted forms (the VISA prefixes are case-insensitive):
//!
//! | Form | Example |
//! |------|---------|
//! | VISA raw socket | `TCPIP::192.168.1.20::5025::SOCKET`, `TCPIP0::host::5025::SOCKET` |
//! | VISA serial | `ASRL/dev/ttyUSB0::INSTR` |
//! | URL, TCP | `tcp://127.0.0.1:5025`, `tcp://[::1]:5025` |
//! | URL, serial | `serial:///dev/ttyUSB0` |
//!
//! Not supported: VXI-11 and HiSLIP (`TCPIP::host::INSTR`, `::hislip0`), GPIB and USBTMC, and
//! numbered serial ports (`ASRL3::INSTR`): give the device path instead.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed instrument address.
///
/// ```
/// use ensemble_actors::instruments::scpi::Address;
/// let a: Address = "TCPIP::10.0.0.5::5025::SOCKET".parse().unwrap();
/// assert_eq!(a, Address::Tcp { host: "10.0.0.5".into(), port: 5025 });
/// let s: Address = "serial:///dev/ttyUSB0".parse().unwrap();
/// assert_eq!(s, Address::Serial { path: "/dev/ttyUSB0".into() });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A raw TCP socket (port 5025 is the SCPI convention).
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A serial port, by device path.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0`.
        path: PathBuf,
    },
}

/// Why an address string could not be parsed. Each variant carries the address as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The address is empty.
    #[error("the address is empty")]
    Empty,
    /// The string matches none of the supported forms.
    #[error(
        "unknown address form `{0}`: expected `TCPIP::HOST::PORT::SOCKET`, \
         `ASRL/dev/DEVICE::INSTR`, `tcp://HOST:PORT` or `serial:///dev/DEVICE`"
    )]
    UnknownForm(String),
    /// A VISA resource this transport does not speak (VXI-11, HiSLIP, GPIB, USB, numbered ASRL).
    #[error(
        "unsupported VISA resource `{0}`: only raw sockets (`TCPIP::HOST::PORT::SOCKET`) and serial device paths (`ASRL/dev/DEVICE::INSTR`) are supported"
    )]
    UnsupportedVisa(String),
    /// The host part is empty.
    #[error("no host in address `{0}`")]
    MissingHost(String),
    /// The port is missing, not a number, or 0.
    #[error("invalid port `{port}` in address `{address}`: expected a number from 1 to 65535")]
    InvalidPort {
        /// The address as written.
        address: String,
        /// The port text.
        port: String,
    },
    /// The serial device path is empty or not absolute.
    #[error(
        "invalid serial device path in address `{0}`: expected an absolute path like `/dev/ttyUSB0`"
    )]
    InvalidPath(String),
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let upper = s.to_ascii_uppercase();
        if let Some(rest) = s.strip_prefix("tcp://") {
            return parse_host_port(s, rest);
        }
        if let Some(rest) = s.strip_prefix("serial://") {
            return serial_path(s, rest);
        }
        if upper.starts_with("TCPIP") {
            let parts: Vec<&str> = s.split("::").collect();
            let board = &parts[0][5..];
            if !board.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AddressError::UnknownForm(s.to_string()));
            }
            return match parts.as_slice() {
                [_, host, port, kind] if kind.eq_ignore_ascii_case("SOCKET") => {
                    if host.is_empty() {
                        return Err(AddressError::MissingHost(s.to_string()));
                    }
                    Ok(Address::Tcp {
                        host: host
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string(),
                        port: parse_port(s, port)?,
                    })
                }
                _ => Err(AddressError::UnsupportedVisa(s.to_string())),
            };
        }
        if upper.starts_with("ASRL") {
            let body = &s[4..];
            let Some(path) = body
                .strip_suffix("::INSTR")
                .or_else(|| body.strip_suffix("::instr"))
            else {
                return Err(AddressError::UnsupportedVisa(s.to_string()));
            };
            if path.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AddressError::UnsupportedVisa(s.to_string()));
            }
            return serial_path(s, path);
        }
        if upper.starts_with("GPIB") || upper.starts_with("USB") || upper.starts_with("VXI") {
            return Err(AddressError::UnsupportedVisa(s.to_string()));
        }
        Err(AddressError::UnknownForm(s.to_string()))
    }
}

fn parse_port(address: &str, port: &str) -> Result<u16, AddressError> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(AddressError::InvalidPort {
            address: address.to_string(),
            port: port.to_string(),
        }),
    }
}

fn parse_host_port(address: &str, rest: &str) -> Result<Address, AddressError> {
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once("]:") {
            Some((h, p)) => (h, p),
            None => {
                return Err(AddressError::InvalidPort {
                    address: address.to_string(),
                    port: String::new(),
                });
            }
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (rest, ""),
        }
    };
    if host.is_empty() {
        return Err(AddressError::MissingHost(address.to_string()));
    }
    Ok(Address::Tcp {
        host: host.to_string(),
        port: parse_port(address, port)?,
    })
}

fn serial_path(address: &str, path: &str) -> Result<Address, AddressError> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(AddressError::InvalidPath(address.to_string()));
    }
    Ok(Address::Serial {
        path: PathBuf::from(path),
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Address::Serial { path } => write!(f, "serial://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(
            "TCPIP::1.2.3.4::5025::SOCKET".parse(),
            Ok(tcp("1.2.3.4", 5025))
        );
        assert_eq!(
            "tcpip0::dmm.lab::5025::socket".parse(),
            Ok(tcp("dmm.lab", 5025))
        );
        assert_eq!("tcp://127.0.0.1:9000".parse(), Ok(tcp("127.0.0.1", 9000)));
        assert_eq!("tcp://[::1]:9000".parse(), Ok(tcp("::1", 9000)));
        let serial = Address::Serial {
            path: "/dev/ttyUSB0".into(),
        };
        assert_eq!("ASRL/dev/ttyUSB0::INSTR".parse(), Ok(serial.clone()));
        assert_eq!("serial:///dev/ttyUSB0".parse(), Ok(serial));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!("".parse::<Address>(), Err(AddressError::Empty));
        assert!(matches!(
            "TCPIP::host::INSTR".parse::<Address>(),
            Err(AddressError::UnsupportedVisa(_))
        ));
        assert!(matches!(
            "ASRL3::INSTR".parse::<Address>(),
            Err(AddressError::UnsupportedVisa(_))
        ));
        assert!(matches!(
            "GPIB0::5::INSTR".parse::<Address>(),
            Err(AddressError::UnsupportedVisa(_))
        ));
        assert_eq!(
            "tcp://host:99999".parse::<Address>(),
            Err(AddressError::InvalidPort {
                address: "tcp://host:99999".into(),
                port: "99999".into()
            })
        );
        assert!(matches!(
            "tcp://host".parse::<Address>(),
            Err(AddressError::InvalidPort { .. })
        ));
        assert!(matches!(
            "tcp://:5025".parse::<Address>(),
            Err(AddressError::MissingHost(_))
        ));
        assert!(matches!(
            "serial://ttyUSB0".parse::<Address>(),
            Err(AddressError::InvalidPath(_))
        ));
        assert!(matches!(
            "http://x:1".parse::<Address>(),
            Err(AddressError::UnknownForm(_))
        ));
        let msg = "TCPIP::h::0::SOCKET"
            .parse::<Address>()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`0`") && msg.contains("TCPIP::h::0::SOCKET"),
            "{msg}"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp://127.0.0.1:5025",
            "tcp://[::1]:1",
            "serial:///dev/ttyS0",
        ] {
            assert_eq!(s.parse::<Address>().unwrap().to_string(), s);
        }
    }
}
