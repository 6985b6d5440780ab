//! A line-oriented byte transport to one device, over TCP or a serial port.
//!
//! Commands go out with the write termination appended; answers come back split at the read
//! termination. One read buffer lives as long as the transport: reading an answer allocates
//! nothing once the buffer has grown to the longest answer seen.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_serial::SerialPortBuilderExt;

use super::address::Address;
use super::config::{FlowControl, Parity, ScpiInstrumentConfig};

/// Longest answer accepted; a device that sends more without a termination is cut off, so a
/// wrong termination setting cannot grow the buffer without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting failed (the device is off, the port is busy or missing, ...).
    #[error("could not connect to {address}: {source}")]
    Connect {
        /// The address, as displayed.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No (complete) answer within the timeout. The connection is still usable.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The device closed the connection.
    #[error("the device closed the connection")]
    Closed,
    /// Reading or writing failed; the connection is considered lost.
    #[error("i/o error while {op}: {source}")]
    Io {
        /// `"reading"` or `"writing"`.
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An answer grew past [`MAX_LINE_BYTES`] without a termination.
    #[error("an answer exceeded {MAX_LINE_BYTES} bytes without a termination")]
    LineTooLong,
}

impl TransportError {
    /// True when the connection must be considered lost and reopened.
    pub fn is_connection_lost(&self) -> bool {
        !matches!(self, TransportError::Timeout(_))
    }
}

/// Anything that carries bytes both ways.
trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Settings a transport needs besides the address.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Bytes that end an answer.
    pub read_termination: Vec<u8>,
    /// Bytes appended to a command.
    pub write_termination: Vec<u8>,
    /// Answer (and TCP connect) timeout.
    pub timeout: Duration,
    /// Serial line settings.
    pub baud_rate: u32,
    /// Serial data bits.
    pub data_bits: u8,
    /// Serial parity.
    pub parity: Parity,
    /// Serial stop bits.
    pub stop_bits: u8,
    /// Serial flow control.
    pub flow_control: FlowControl,
}

impl TransportSettings {
    /// The transport settings of an instrument config.
    pub fn from_config(c: &ScpiInstrumentConfig) -> Self {
        Self {
            read_termination: c.read_termination.as_bytes().to_vec(),
            write_termination: c.write_termination.as_bytes().to_vec(),
            timeout: c.timeout,
            baud_rate: c.baud_rate,
            data_bits: c.data_bits,
            parity: c.parity,
            stop_bits: c.stop_bits,
            flow_control: c.flow_control,
        }
    }
}

/// An open line connection to a device.
pub struct Transport {
    io: Box<dyn Duplex>,
    settings: TransportSettings,
    /// Received bytes; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// Bytes of the last returned line (including its termination) still to drop from `buf`.
    consumed: usize,
    /// Outgoing command with termination, reused.
    out: Vec<u8>,
    /// A read timed out: a late answer may still arrive and must not be taken for the next one.
    stale: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("buffered", &(self.buf.len() - self.start))
            .finish()
    }
}

impl Transport {
    /// Opens a connection to `address`.
    pub async fn connect(
        address: &Address,
        settings: TransportSettings,
    ) -> Result<Self, TransportError> {
        let io: Box<dyn Duplex> = match address {
            Address::Tcp { host, port } => {
                let connect = TcpStream::connect((host.as_str(), *port));
                let stream = match tokio::time::timeout(settings.timeout, connect).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(source)) => return Err(connect_error(address, source)),
                    Err(_) => return Err(connect_error(address, io::ErrorKind::TimedOut.into())),
                };
                // Commands are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                Box::new(stream)
            }
            Address::Serial { path } => {
                Box::new(open_serial(path, &settings).map_err(|e| connect_error(address, e))?)
            }
        };
        Ok(Self::from_io(io, settings))
    }

    /// Wraps an already open byte stream (tests, or a transport the caller opened).
    pub fn from_stream<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        stream: S,
        settings: TransportSettings,
    ) -> Self {
        Self::from_io(Box::new(stream), settings)
    }

    fn from_io(io: Box<dyn Duplex>, settings: TransportSettings) -> Self {
        Self {
            io,
            settings,
            buf: Vec::with_capacity(256),
            start: 0,
            consumed: 0,
            out: Vec::with_capacity(64),
            stale: false,
        }
    }

    /// Sends one command followed by the write termination.
    ///
    /// If an earlier read timed out, whatever arrived since is discarded first, so a late
    /// answer is not taken for the answer to this command.
    pub async fn write_line(&mut self, command: &str) -> Result<(), TransportError> {
        self.drop_consumed();
        if self.stale {
            self.discard_input().await?;
            self.stale = false;
        }
        self.out.clear();
        self.out.extend_from_slice(command.as_bytes());
        self.out.extend_from_slice(&self.settings.write_termination);
        let write = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.settings.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(TransportError::Io {
                op: "writing",
                source,
            }),
            Err(_) => Err(TransportError::Io {
                op: "writing",
                source: io::ErrorKind::TimedOut.into(),
            }),
        }
    }

    /// Reads one answer, without its termination, waiting at most the timeout.
    ///
    /// The returned slice borrows the transport's buffer until the next call.
    pub async fn read_line(&mut self) -> Result<&[u8], TransportError> {
        self.drop_consumed();
        let timeout = self.settings.timeout;
        match tokio::time::timeout(timeout, self.fill_until_line()).await {
            Ok(Ok(end)) => {
                let term = self.settings.read_termination.len();
                self.consumed = end + term - self.start;
                Ok(&self.buf[self.start..end])
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.stale = true;
                Err(TransportError::Timeout(timeout))
            }
        }
    }

    /// Sends a query and reads its answer.
    pub async fn query(&mut self, command: &str) -> Result<&[u8], TransportError> {
        self.write_line(command).await?;
        self.read_line().await
    }

    /// Reads until `buf[start..]` holds a termination; returns the index where it starts.
    async fn fill_until_line(&mut self) -> Result<usize, TransportError> {
        let term_len = self.settings.read_termination.len();
        let mut scanned = self.start;
        loop {
            if let Some(pos) = find(&self.buf[scanned..], &self.settings.read_termination) {
                return Ok(scanned + pos);
            }
            // A termination may straddle what was read and what comes next.
            scanned = self.buf.len().saturating_sub(term_len - 1).max(self.start);
            if self.buf.len() - self.start > MAX_LINE_BYTES {
                self.buf.clear();
                self.start = 0;
                return Err(TransportError::LineTooLong);
            }
            self.read_more().await?;
        }
    }

    /// Appends what the device sent next to the buffer.
    async fn read_more(&mut self) -> Result<usize, TransportError> {
        let len = self.buf.len();
        if self.buf.capacity() - len < 128 {
            self.buf.reserve(len.max(256));
        }
        let cap = self.buf.capacity();
        self.buf.resize(cap, 0);
        let n = self.io.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        match n {
            Ok(0) => Err(TransportError::Closed),
            Ok(n) => Ok(n),
            Err(source) => Err(TransportError::Io {
                op: "reading",
                source,
            }),
        }
    }

    /// Drops the last returned line and compacts the buffer when it is all consumed.
    fn drop_consumed(&mut self) {
        self.start += std::mem::take(&mut self.consumed);
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Discards buffered bytes and whatever the device has already sent, without waiting.
    async fn discard_input(&mut self) -> Result<(), TransportError> {
        self.buf.clear();
        self.start = 0;
        // `timeout` polls the read once before checking its deadline: a zero timeout is a
        // non-blocking read. Bounded: a device that streams without pause cannot hold us here.
        for _ in 0..64 {
            match tokio::time::timeout(Duration::ZERO, self.read_more()).await {
                Ok(Ok(_)) => self.buf.clear(),
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        self.buf.clear();
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return haystack.iter().position(|&b| b == needle[0]);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn connect_error(address: &Address, source: io::Error) -> TransportError {
    TransportError::Connect {
        address: address.to_string(),
        source,
    }
}

fn open_serial(path: &Path, s: &TransportSettings) -> io::Result<tokio_serial::SerialStream> {
    let path = path.to_string_lossy();
    let data_bits = match s.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let stop_bits = match s.stop_bits {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    let flow = match s.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    tokio_serial::new(path, s.baud_rate)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow)
        .timeout(s.timeout)
        .open_native_async()
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(read: &str, timeout_ms: u64) -> TransportSettings {
        TransportSettings {
            read_termination: read.as_bytes().to_vec(),
            write_termination: b"\n".to_vec(),
            timeout: Duration::from_millis(timeout_ms),
            baud_rate: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow_control: FlowControl::None,
        }
    }

    #[tokio::test]
    async fn lines_split_at_multi_byte_termination_across_reads() {
        let (client, mut device) = tokio::io::duplex(64);
        let mut t = Transport::from_stream(client, settings("\r\n", 500));
        device.write_all(b"1.5\r").await.unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            device.write_all(b"\n2.5\r\n").await.unwrap();
            device
        });
        assert_eq!(t.read_line().await.unwrap(), b"1.5");
        assert_eq!(t.read_line().await.unwrap(), b"2.5");
        let mut device = writer.await.unwrap();
        t.write_line("X?").await.unwrap();
        let mut got = [0u8; 3];
        device.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"X?\n");
        drop(device);
        assert!(matches!(t.read_line().await, Err(TransportError::Closed)));
    }

    #[tokio::test]
    async fn timeout_then_late_answer_is_discarded() {
        let (client, mut device) = tokio::io::duplex(64);
        let mut t = Transport::from_stream(client, settings("\n", 30));
        assert!(matches!(
            t.read_line().await,
            Err(TransportError::Timeout(_))
        ));
        device.write_all(b"late\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        t.write_line("Q?").await.unwrap();
        device.write_all(b"fresh\n").await.unwrap();
        assert_eq!(t.read_line().await.unwrap(), b"fresh");
    }
}
