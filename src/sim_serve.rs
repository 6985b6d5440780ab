//! `ensemble sim serve`: the SCPI simulator on a TCP port (many clients) or a pseudo-terminal
//! (one serial client at a time), until Ctrl-C.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use ensemble_actors::simulator::{FaultSpec, Profile, SimulatorOptions, serve_pty, serve_tcp};

/// Where the simulator listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address, e.g. `127.0.0.1:5025` (port 0: any free port).
    Tcp(SocketAddr),
    /// A new pseudo-terminal; its path is printed.
    Pty,
}

/// Why the simulator could not serve.
#[derive(Debug, thiserror::Error)]
pub enum SimServeError {
    /// The TCP address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The pseudo-terminal could not be made.
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(std::io::Error),
    /// Serving failed (accepting a client, the terminal).
    #[error("the simulator stopped: {0}")]
    Serve(std::io::Error),
}

/// Merges repeated `--fault` values: each one sets the faults it names, later ones win.
pub fn merge_faults(faults: &[FaultSpec]) -> FaultSpec {
    let mut out = FaultSpec::default();
    for f in faults {
        out.disconnect_after = f.disconnect_after.or(out.disconnect_after);
        out.stall_after = f.stall_after.or(out.stall_after);
        out.delay = f.delay.or(out.delay);
        if f.garbage > 0.0 {
            out.garbage = f.garbage;
        }
    }
    out
}

/// Serves `profile` with `faults` and `seed` on `listen` until `shutdown` resolves.
///
/// Prints one line to `out` once it listens: `listening on tcp://127.0.0.1:5025 (profile psu)`
/// or `listening on serial:///dev/pts/7 (profile psu)`, the address an experiment's `address`
/// can use as it is.
pub async fn serve(
    listen: Listen,
    profile: Profile,
    faults: FaultSpec,
    seed: u64,
    shutdown: impl Future<Output = ()>,
    out: &mut dyn Write,
) -> Result<(), SimServeError> {
    let options = SimulatorOptions {
        profile,
        faults,
        seed,
        ..Default::default()
    };
    let (address, server): (
        String,
        std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>>>>,
    ) = match listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| SimServeError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| SimServeError::Bind { addr, source })?;
            (
                format!("tcp://{local}"),
                Box::pin(serve_tcp(listener, options)),
            )
        }
        Listen::Pty => {
            let (path, server): (PathBuf, _) = serve_pty(options).map_err(SimServeError::Pty)?;
            (format!("serial://{}", path.display()), Box::pin(server))
        }
    };
    let _ = writeln!(out, "listening on {address} (profile {profile})");
    let _ = out.flush();
    tokio::select! {
        result = server => result.map_err(SimServeError::Serve),
        () = shutdown => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_faults_merge_and_later_ones_win() {
        let parsed: Vec<FaultSpec> = ["garbage=0.1", "delay=5ms", "garbage=0.2,stall-after=3"]
            .iter()
            .map(|s| FaultSpec::parse(s).expect("valid"))
            .collect();
        let f = merge_faults(&parsed);
        assert_eq!(f.garbage, 0.2);
        assert_eq!(f.delay, Some(std::time::Duration::from_millis(5)));
        assert_eq!(f.stall_after, Some(3));
        assert_eq!(f.disconnect_after, None);
    }

    #[tokio::test]
    async fn serves_tcp_and_prints_the_address() {
        let mut out = Vec::new();
        let listen = Listen::Tcp("127.0.0.1:0".parse().expect("addr"));
        let result = serve(
            listen,
            Profile::Psu,
            FaultSpec::default(),
            0,
            async {},
            &mut out,
        )
        .await;
        assert!(result.is_ok());
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("listening on tcp://127.0.0.1:"), "{text}");
        assert!(text.contains("(profile psu)"), "{text}");
    }
}
