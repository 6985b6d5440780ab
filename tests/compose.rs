//! `docker-compose.yml` kept true (issue 15) without Docker: read the compose file (and its
//! secured override), run its services' commands natively on loopback (the three `nats-server`
//! command lines with their ports, store directories and host names remapped, the acquire and
//! ingest commands with their configs), and check that ingest wrote every row of both runs.
//! A broken command line fails the check, which a test shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ensemble::ingest::check_run;

use crate::nats_cluster::{NatsNode, free_ports, nats_server_available};
use crate::util::*;

/// How long each acquire run streams here (the configs say 30 s; `--duration` overrides it).
const RUN_FOR: &str = "2s";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A service's command as a list of arguments (compose takes a string or a list).
fn command(services: &serde_yaml::Value, name: &str) -> Result<Vec<String>, String> {
    let cmd = &services[name]["command"];
    if let Some(text) = cmd.as_str() {
        return Ok(text.split_whitespace().map(str::to_string).collect());
    }
    cmd.as_sequence()
        .ok_or_else(|| format!("service {name} has no command"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{name}: command entry {v:?} is not a string"))
        })
        .collect()
}

/// The compose file with `overrides` merged in (maps merged key by key, anything else
/// replaced, as `docker compose -f a -f b` does for `command`).
fn load(files: &[&str]) -> Result<serde_yaml::Value, String> {
    let mut merged = serde_yaml::Value::Null;
    for file in files {
        let text =
            std::fs::read_to_string(repo().join(file)).map_err(|e| format!("{file}: {e}"))?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
        merge(&mut merged, value);
    }
    Ok(merged)
}

fn merge(into: &mut serde_yaml::Value, from: serde_yaml::Value) {
    match (into, from) {
        (serde_yaml::Value::Mapping(a), serde_yaml::Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// How container paths and host names map onto this machine.
struct Remap {
    /// `nats-N` → (client port, cluster port, monitor port).
    ports: BTreeMap<String, (u16, u16, u16)>,
    /// Container directory prefix → local directory (`/configs`, `/certs`, `/data`, ...).
    dirs: Vec<(String, PathBuf)>,
}

impl Remap {
    /// `text` with host names, ports and container paths replaced.
    fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (host, (client, cluster, _)) in &self.ports {
            for scheme in ["nats", "tls"] {
                out = out.replace(
                    &format!("{scheme}://{host}:4222"),
                    &format!("{scheme}://127.0.0.1:{client}"),
                );
                out = out.replace(
                    &format!("{scheme}://{host}:6222"),
                    &format!("{scheme}://127.0.0.1:{cluster}"),
                );
            }
        }
        for (from, to) in &self.dirs {
            out = out.replace(&format!("{from}/"), &format!("{}/", to.display()));
        }
        out
    }

    /// A config file named in a command, copied with [`Remap::text`] applied (so its host
    /// names, ports and paths work here).
    fn config(&self, container_path: &str, scratch: &Path) -> Result<PathBuf, String> {
        let local = self.text(container_path);
        let text = std::fs::read_to_string(&local).map_err(|e| format!("{local}: {e}"))?;
        let name = Path::new(&local).file_name().ok_or("config name")?;
        let copy = scratch.join(name);
        std::fs::write(&copy, self.text(&text)).map_err(|e| format!("{}: {e}", copy.display()))?;
        Ok(copy)
    }
}

/// A `nats-server` service's arguments, remapped: binds loopback, its own client, cluster and
/// monitoring ports and store directory; `-c` configs copied with paths remapped.
fn nats_args(
    args: &[String],
    node: &str,
    remap: &Remap,
    scratch: &Path,
) -> Result<Vec<String>, String> {
    let (_, cluster, _) = remap.ports[node];
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            // Set by the node helper: store, name, ports.
            "-sd" | "-n" | "-m" | "-p" => {
                it.next().ok_or(format!("{a} without a value"))?;
            }
            "--cluster" => {
                it.next().ok_or("--cluster without a value")?;
                out.extend([
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{cluster}"),
                ]);
            }
            "-c" => {
                let file = it.next().ok_or("-c without a value")?;
                out.push("-c".into());
                out.push(remap.config(file, scratch)?.display().to_string());
            }
            _ => out.push(remap.text(a)),
        }
    }
    Ok(out)
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the compose deployment described by `files` natively; `dirs` maps extra container
/// directories (e.g. `/certs`) to local ones, `env` is given to every ensemble command.
/// Returns the rows ingest wrote per run, or why the deployment does not work.
fn run_compose(
    files: &[&str],
    dirs: &[(&str, &Path)],
    env: &[(&str, &str)],
) -> Result<BTreeMap<String, u64>, String> {
    let compose = load(files)?;
    let services = &compose["services"];
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let nodes: Vec<String> = ["nats-1", "nats-2", "nats-3"].map(String::from).to_vec();
    let ports = free_ports(9);
    let mut remap = Remap {
        ports: nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), (ports[i], ports[3 + i], ports[6 + i])))
            .collect(),
        dirs: vec![("/configs".into(), repo().join("configs"))],
    };
    for (from, to) in dirs {
        remap.dirs.push((from.to_string(), to.to_path_buf()));
    }
    let mut servers = Vec::new();
    for node in &nodes {
        let args = command(services, node)?;
        let store = scratch.path().join(node);
        let args = nats_args(&args, node, &remap, scratch.path())?;
        let (client, _, monitor) = remap.ports[node];
        let mut server = NatsNode::new(node, &store, (client, monitor), args);
        server.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        server.spawn_checked()?;
        servers.push(server);
    }
    // Acquire and ingest write under /data; each service gets its own directory.
    let data = scratch.path().join("data");
    let runs = data.join("runs");
    remap.dirs.push(("/data".into(), data.clone()));
    let mut ingest_args = command(services, "ingest")?;
    ingest_args.extend(["--commit-interval=200ms".into(), "--ack-wait=2s".into()]);
    let ingest_log = scratch.path().join("ingest.log");
    let ingest = Guard(
        Command::new(ensemble_bin())
            .args(ingest_args.iter().map(|a| remap.text(a)))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&ingest_log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("ingest: {e}"))?,
    );
    let mut acquirers = Vec::new();
    for service in ["acquire-a", "acquire-b"] {
        let mut args = command(services, service)?;
        if args.first().map(String::as_str) != Some("run") || args.len() < 2 {
            return Err(format!("{service}: expected `run FILE ...`, got {args:?}"));
        }
        args[1] = remap
            .config(&args[1], scratch.path())?
            .display()
            .to_string();
        let out = scratch.path().join(service);
        let child = Command::new(ensemble_bin())
            .args(args.iter().map(|a| remap.text(a)))
            .args(["--duration", RUN_FOR, "--output"])
            .arg(&out)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{service}: {e}"))?;
        acquirers.push((service, out, child));
    }
    let mut ingested = BTreeMap::new();
    for (service, out, child) in acquirers {
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "{service} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let run_dir = only_run_dir(&out).ok_or(format!("{service} made no run"))?;
        let name = run_dir.file_name().ok_or("run name")?.to_owned();
        let manifest = ensemble::manifest::Manifest::read(&run_dir).map_err(|e| e.to_string())?;
        let produced: u64 = manifest.streams.values().map(|s| s.rows).sum();
        let ingest_run = runs.join(&name);
        let deadline = Instant::now() + Duration::from_secs(60);
        let rows = loop {
            let check = ingest_run
                .exists()
                .then(|| check_run(&ingest_run).ok())
                .flatten();
            if let Some(c) = check.filter(|c| c.is_complete()) {
                break c.streams.values().map(|s| s.rows).sum::<u64>();
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ingest did not complete {service}'s run:\n{}",
                    std::fs::read_to_string(&ingest_log).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(200));
        };
        if rows != produced {
            return Err(format!("{service}: ingest holds {rows} rows of {produced}"));
        }
        ingested.insert(service.to_string(), rows);
    }
    drop(ingest);
    drop(servers);
    Ok(ingested)
}

#[test]
fn issue_15_compose_file_runs_natively_and_ingests_every_row() {
    if !nats_server_available() {
        return;
    }
    let rows = run_compose(&["docker-compose.yml"], &[], &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.values().all(|&r| r > 0), "{rows:?}");
}

#[test]
fn issue_15_a_broken_compose_command_line_fails_the_check() {
    if !nats_server_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose");
    // A typo in one server's flags, as a careless edit would make it.
    let broken = text.replacen("--cluster_name ensemble", "--cluster-name ensemble", 1);
    assert_ne!(broken, text, "the flag to break is there");
    let path = dir.path().join("broken.yml");
    std::fs::write(&path, broken).expect("write");
    let err = run_compose(&[path.to_str().expect("utf-8 path")], &[], &[])
        .expect_err("a broken command line fails");
    assert!(err.contains("nats-1"), "names the service: {err}");
}

/// The secured override: TLS with client certificates and an nkey user, with certificates and
/// the seed generated here into the directory the override mounts as `/secrets`.
#[test]
fn issue_15_secured_compose_override_runs_natively_with_tls_and_nkeys() {
    if !nats_server_available() {
        return;
    }
    let secrets = tempfile::tempdir().expect("tempdir");
    let names = ["nats-1", "nats-2", "nats-3", "127.0.0.1", "localhost"].map(String::from);
    crate::nats_security::write_pki(secrets.path(), names.to_vec());
    let user = nkeys::KeyPair::new_user();
    std::fs::write(secrets.path().join("user.nk"), user.seed().expect("seed")).expect("seed");
    let public = user.public_key();
    let files = ["docker-compose.yml", "docker-compose.secure.yml"];
    let env = [("ENSEMBLE_NKEY_PUBLIC", public.as_str())];
    let rows = run_compose(&files, &[("/secrets", secrets.path())], &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 2, "{rows:?}");

    // Without the client certificate the secured servers refuse the acquire nodes.
    std::fs::remove_file(secrets.path().join("client.pem")).expect("remove");
    let err = run_compose(&files, &[("/secrets", secrets.path())], &env)
        .expect_err("no client certificate");
    assert!(err.contains("acquire-a failed"), "{err}");
    assert!(err.contains("tls_cert_file"), "{err}");
}
