//! Test helper: real `nats-server` processes on loopback. [`NatsNode`] is one server (any extra
//! flags, e.g. TLS or a `-c` config); [`NatsCluster`] is three JetStream nodes routed to each
//! other, each with its own store directory in a temp dir. Every port is chosen free at run
//! time; every process is stopped by its PID (SIGKILL on drop).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::external_available;

/// Whether `nats-server` runs here; prints why not (or panics under
/// `ENSEMBLE_REQUIRE_EXTERNAL=1`).
pub fn nats_server_available() -> bool {
    let available = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    external_available("nats-server", available)
}

/// `n` distinct free loopback ports, all held at once while choosing so none repeats.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound address").port())
        .collect()
}

/// One `nats-server` child process.
pub struct NatsNode {
    /// Server name (`-n`), as JetStream reports stream leaders.
    pub name: String,
    /// Client port on 127.0.0.1.
    pub port: u16,
    /// Monitoring port (`/healthz`, `/jsz`).
    pub monitor_port: u16,
    /// Flags after the common ones (cluster, TLS, config file).
    args: Vec<String>,
    /// The JetStream store, kept across restarts.
    store: PathBuf,
    child: Option<Child>,
    /// Where the server's output goes (read it when a test fails).
    log: PathBuf,
    /// Environment variables given to the server (a config may refer to them).
    pub env: Vec<(String, String)>,
}

impl NatsNode {
    /// A node named `name` storing under `store`, with `args` after the common flags. Not
    /// started yet.
    pub fn new(name: &str, store: &Path, ports: (u16, u16), args: Vec<String>) -> Self {
        std::fs::create_dir_all(store).expect("store dir");
        Self {
            name: name.to_string(),
            port: ports.0,
            monitor_port: ports.1,
            args,
            store: store.to_path_buf(),
            child: None,
            log: store.with_extension("log"),
            env: Vec::new(),
        }
    }

    /// Starts the process and waits until it accepts TCP connections.
    ///
    /// # Panics
    /// When the server exits or does not listen within 10 s (its log is in the message).
    pub fn spawn(&mut self) {
        if let Err(e) = self.spawn_checked() {
            panic!("{e}");
        }
    }

    /// As [`NatsNode::spawn`], returning why the server did not come up instead of panicking.
    pub fn spawn_checked(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-n", &self.name])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(&self.store)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: nats-server does not start: {e}", self.name))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "{} exited ({status}) with {:?}:\n{}",
                    self.name,
                    self.args,
                    self.log_text()
                ));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "{} did not listen:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILLs the process (by its PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL to this PID on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// HTTP status of `GET path` on the monitoring port, if it answered.
    pub fn monitor_status(&self, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.monitor_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three JetStream nodes `n0`, `n1`, `n2` in cluster `C`, routed on loopback.
pub struct NatsCluster {
    /// The nodes, by index.
    pub nodes: Vec<NatsNode>,
    /// Holds the store directories and logs.
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream is healthy on all of them; `None` (after
    /// [`nats_server_available`] said why) without `nats-server`.
    pub fn start() -> Option<Self> {
        if !nats_server_available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(9);
        let routes: Vec<String> = (0..3)
            .map(|i| format!("nats://127.0.0.1:{}", ports[6 + i]))
            .collect();
        let nodes = (0..3)
            .map(|i| {
                let args = vec![
                    "--cluster_name".to_string(),
                    "C".to_string(),
                    "--cluster".to_string(),
                    routes[i].clone(),
                    "--routes".to_string(),
                    routes.join(","),
                ];
                NatsNode::new(
                    &format!("n{i}"),
                    &dir.path().join(format!("n{i}")),
                    (ports[i], ports[3 + i]),
                    args,
                )
            })
            .collect();
        let mut cluster = Self { nodes, _dir: dir };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        cluster.wait_healthy(Duration::from_secs(30));
        Some(cluster)
    }

    /// Every node's client URL, comma-separated (the seeds a client is given).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running node reports JetStream healthy (`/healthz` answers 200).
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            while node.monitor_status("/healthz") != Some(200) {
                assert!(
                    Instant::now() < deadline,
                    "{} not healthy within {within:?}:\n{}",
                    node.name,
                    node.log_text()
                );
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again with its store, ports and routes.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
    }

    /// Index of the node leading JetStream stream `stream`, asked of a running node through
    /// `$JS.API.STREAM.INFO.<stream>` (`cluster.leader`); waits up to `within` for the stream
    /// to exist and have a leader.
    pub fn leader(&self, stream: &str, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            if let Some(name) = self.ask_leader(stream) {
                if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} has no leader within {within:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn ask_leader(&self, stream: &str) -> Option<String> {
        let info = self.stream_info(stream)?;
        info["cluster"]["leader"].as_str().map(str::to_string)
    }

    /// The answer of `$JS.API.STREAM.INFO.<stream>` from a running node, if it gave one.
    pub fn stream_info(&self, stream: &str) -> Option<serde_json::Value> {
        let node = self.nodes.iter().find(|n| n.is_running())?;
        let url = node.url();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(2))
                .connect(url)
                .await
                .ok()?;
            let reply = tokio::time::timeout(
                Duration::from_secs(2),
                client.request(format!("$JS.API.STREAM.INFO.{stream}"), "".into()),
            )
            .await
            .ok()?
            .ok()?;
            serde_json::from_slice(&reply.payload).ok()
        })
    }
}
