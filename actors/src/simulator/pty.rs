//! Serving the simulator on a pseudo-terminal, made with `openpty(3)` (through `nix`), so a
//! client opens it like a serial port. No external program is needed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ConnectionEnd, SharedDevice, SimulatorOptions, serve_connection};

/// Creates a pseudo-terminal pair and returns the path clients open (e.g. `/dev/pts/7`) and
/// the future that serves it. Dropping the future closes the pair.
///
/// One client at a time; a client may close and reopen the path. Between clients, the server
/// polls every 20 ms for a new one, and each client starts the fault draws afresh. Because the device side of a pseudo-terminal cannot hang
/// up, `disconnect-after` stops answering on it (like `stall-after`) until the client reopens.
///
/// The terminal is in raw mode (no echo, no `\r`/`\n` translation), so every termination
/// passes unchanged.
pub fn serve_pty(
    options: SimulatorOptions,
) -> io::Result<(PathBuf, impl Future<Output = io::Result<()>> + Send)> {
    let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    let mut termios = tcgetattr(&pair.slave).map_err(io::Error::from)?;
    cfmakeraw(&mut termios);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
    let path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
    fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    // Our end of the slave is closed: a client that holds the port exclusively (tokio-serial
    // does) can then close and reopen it.
    drop(pair.slave);
    let master_fd = pair.master;
    let serve = async move {
        // Registered inside the future, so `serve_pty` itself needs no runtime.
        // SAFETY: an `OwnedFd` is a valid open descriptor that stays open, and always returns
        // the same number, for as long as the `AsyncFd` owns it.
        let fd = unsafe { AsyncFd::register(master_fd) }.map_err(io::Error::from)?;
        let mut master = PtyMaster { fd };
        let device = SharedDevice::new(&options);
        loop {
            // Every client is connection 0: one client at a time, its fault draws restart.
            match serve_connection(&mut master, &device, &options, 0).await {
                Ok(ConnectionEnd::ClientClosed) => {}
                Ok(ConnectionEnd::FaultDisconnect) => {
                    // Cannot hang up: swallow input until the client goes away.
                    let mut sink = [0u8; 256];
                    while tokio::io::AsyncReadExt::read(&mut master, &mut sink)
                        .await
                        .is_ok_and(|n| n > 0)
                    {}
                }
                // EIO: no client has the slave open right now.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {}
                Err(e) => return Err(e),
            }
            // Until a client opens the slave, reads fail at once with EIO: poll, bounded.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    Ok((path, serve))
}

/// The device side of the pseudo-terminal, as an async byte stream.
struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|inner| {
                nix::unistd::read(inner.get_ref(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard
                .try_io(|inner| nix::unistd::write(inner.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl std::fmt::Debug for PtyMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PtyMaster({})", self.fd.get_ref().as_raw_fd())
    }
}
