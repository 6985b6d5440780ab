//! An SCPI instrument simulator with fault injection, for tests and `ensemble sim serve`.
//!
//! It plays one of three [`Profile`]s (a multimeter, a power supply, a temperature controller)
//! over TCP ([`serve_tcp`], many clients at once sharing one device) or over a pseudo-terminal
//! ([`serve_pty`], one serial client), or over any byte stream ([`serve_connection`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ensemble_actors::simulator::{serve_tcp, FaultSpec, Profile, SimulatorOptions};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let port = listener.local_addr()?.port();
//! let options = SimulatorOptions {
//!     profile: Profile::Psu,
//!     faults: FaultSpec::parse("garbage=0.05")?,
//!     ..Default::default()
//! };
//! let server = tokio::spawn(serve_tcp(listener, options));
//! // ... connect to tcp://127.0.0.1:{port} ...
//! server.abort();
//! # Ok(()) }
//! ```
//!
//! # Protocol
//! Commands end at `\n`, `\r` or `\r\n` (all accepted; empty lines ignored); answers end with
//! [`SimulatorOptions::write_termination`]. Several commands may share a line, separated by
//! `;`; their answers come back on one line, joined by `;`. Long mnemonics (`MEASure:VOLTage?`)
//! and lower case are accepted. Unknown commands answer nothing and queue
//! `-113,"Undefined header"` for `SYST:ERR?`.
//!
//! # Determinism
//! With the same `seed` and the same commands at the same times, values and faults repeat:
//! the device noise comes from `seed`, the fault draws of connection `n` (0, 1, ... in accept
//! order) from `seed` and `n`.

mod device;
mod fault;
mod pty;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use device::{AMBIENT_K, Device, PSU_LOAD_OHMS, Profile, UnknownProfile, nr3};
pub use fault::{FaultSpec, FaultSpecError};
pub use pty::serve_pty;

use device::Rng;

/// How a simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The device it plays.
    pub profile: Profile,
    /// Faults injected on every connection.
    pub faults: FaultSpec,
    /// Seed of the device noise and the fault draws.
    pub seed: u64,
    /// Appended to every answer.
    pub write_termination: String,
    /// Time constant of the temperature controller (`tempctl`).
    pub tempctl_tau: Duration,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        Self {
            profile: Profile::default(),
            faults: FaultSpec::default(),
            seed: 0,
            write_termination: "\n".to_string(),
            tempctl_tau: Duration::from_secs(5),
        }
    }
}

/// One device shared by the connections of a server, with the time it started.
#[derive(Debug, Clone)]
pub struct SharedDevice {
    device: Arc<Mutex<Device>>,
    started: Instant,
}

impl SharedDevice {
    /// A device in its power-on state, started now.
    pub fn new(options: &SimulatorOptions) -> Self {
        Self {
            device: Arc::new(Mutex::new(Device::new(
                options.profile,
                options.seed,
                options.tempctl_tau,
            ))),
            started: Instant::now(),
        }
    }

    fn handle_line(&self, line: &str) -> Option<String> {
        let now = self.started.elapsed();
        self.lock().handle_line(line, now)
    }

    /// Turns the device off and on again (see [`Device::power_cycle`]): what a
    /// `disconnect-after` fault does, so a client that reconnects finds its settings gone.
    pub fn power_cycle(&self) {
        let now = self.started.elapsed();
        self.lock().power_cycle(now);
    }

    /// Answers `line` as the device would now, without a connection (for tests).
    pub fn query(&self, line: &str) -> Option<String> {
        self.handle_line(line)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Device> {
        // A poisoned lock means another connection panicked mid-command; the state is plain
        // numbers, still usable.
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts clients on `listener` forever, each served by its own task against one shared
/// device. Dropping (or aborting) the returned future closes every connection.
///
/// Fails only if accepting fails.
pub async fn serve_tcp(listener: TcpListener, options: SimulatorOptions) -> io::Result<()> {
    let device = SharedDevice::new(&options);
    let options = Arc::new(options);
    let mut connections = JoinSet::new();
    let mut index = 0u64;
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tracing::debug!(%peer, "Simulator accepted a client.");
        let (device, options) = (device.clone(), options.clone());
        connections.spawn(async move {
            let _ = serve_connection(stream, &device, &options, index).await;
        });
        index += 1;
        // Reap finished connections so the set does not grow with every reconnect.
        while connections.try_join_next().is_some() {}
    }
}

/// What [`serve_connection`] returns when it ends without an i/o error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client closed the connection.
    ClientClosed,
    /// `disconnect-after` closed it (and power-cycled the device).
    FaultDisconnect,
}

/// Serves one client on `stream` until it closes, a `disconnect-after` fault closes it, or an
/// i/o error; `index` picks the connection's fault draws.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    device: &SharedDevice,
    options: &SimulatorOptions,
    index: u64,
) -> io::Result<ConnectionEnd> {
    let faults = &options.faults;
    let mut rng = Rng::new(options.seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5EED);
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let mut answers = 0u64;
    let mut out = Vec::with_capacity(64);
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(ConnectionEnd::ClientClosed);
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..pos]);
            if line.trim().is_empty() {
                continue;
            }
            let Some(answer) = device.handle_line(&line) else {
                continue;
            };
            if faults.stall_after.is_some_and(|n| answers >= n) {
                continue;
            }
            if let Some(delay) = faults.delay {
                tokio::time::sleep(delay).await;
            }
            out.clear();
            if faults.garbage > 0.0 && rng.uniform() < faults.garbage {
                // Never a terminator, and a leading `#` so no parser can read it as a number.
                out.push(b'#');
                let len = 1 + rng.next_u64() % 12;
                for _ in 0..len {
                    let b = (rng.next_u64() % 256) as u8;
                    out.push(if b == b'\n' || b == b'\r' { b'?' } else { b });
                }
            } else {
                out.extend_from_slice(answer.as_bytes());
            }
            out.extend_from_slice(options.write_termination.as_bytes());
            stream.write_all(&out).await?;
            stream.flush().await?;
            answers += 1;
            if faults.disconnect_after.is_some_and(|n| answers >= n) {
                // Like a device that lost power: the connection drops and the settings go.
                device.power_cycle();
                let _ = stream.shutdown().await;
                return Ok(ConnectionEnd::FaultDisconnect);
            }
        }
        if buf.len() > 64 * 1024 {
            // A client that never terminates its lines: drop what it sent.
            buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fault_disconnect_power_cycles_the_device() {
        let options = SimulatorOptions {
            profile: Profile::Psu,
            faults: FaultSpec::parse("disconnect-after=1").expect("valid"),
            ..Default::default()
        };
        let device = SharedDevice::new(&options);
        let (mut client, server) = tokio::io::duplex(256);
        let serving = tokio::spawn({
            let (device, options) = (device.clone(), options.clone());
            async move { serve_connection(server, &device, &options, 0).await }
        });
        client.write_all(b"VOLT 3\nVOLT?\n").await.expect("write");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("read");
        assert_eq!(answer, "+3.000000E+00\n");
        let end = serving.await.expect("task").expect("served");
        assert_eq!(end, ConnectionEnd::FaultDisconnect);
        assert_eq!(device.query("VOLT?").as_deref(), Some("+0.000000E+00"));
    }
}
