//! A secured NATS path (issue 15): `nats-server` with TLS (a CA, server and client
//! certificates generated here) and with users (password from an environment variable, nkey
//! seed file, token, a `.creds` file in operator/JWT mode). `ensemble run` and `ensemble
//! ingest` run as the binary, so their stderr is checked too: right credentials carry every
//! row; wrong or missing ones fail with a clear message and publish nothing; no secret appears
//! in `run.json`, stderr or Parquet metadata.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::nats_cluster::{NatsNode, free_ports, nats_server_available};
use crate::util::*;

/// Rows of every run here (1 kHz for 1 s, as fast as possible).
const ROWS: u64 = 1_000;

/// CA, server and client certificates for 127.0.0.1, as PEM files in `dir`.
pub(crate) struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    write_pki(dir, vec!["127.0.0.1".into(), "localhost".into()])
}

/// Writes `ca.pem`, `server.pem`/`server.key` (for `server_names`) and `client.pem`/`client.key`
/// into `dir`.
pub(crate) fn write_pki(dir: &Path, server_names: Vec<String>) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, stem: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("signed");
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    };
    let (server_cert, server_key) = leaf(server_names, "server");
    let (client_cert, client_key) = leaf(vec!["ensemble-client".into()], "client");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).expect("write CA");
    Pki {
        ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// A single JetStream server with `args`, or `None` without `nats-server`.
fn server(dir: &Path, args: Vec<String>) -> Option<NatsNode> {
    if !nats_server_available() {
        return None;
    }
    let ports = free_ports(2);
    let mut node = NatsNode::new("s0", &dir.join("store"), (ports[0], ports[1]), args);
    node.spawn();
    Some(node)
}

/// An experiment publishing `ROWS` rows to `url`/`stream` with `security` as the sink's
/// `[sinks.bus.security]` table.
fn experiment_file(dir: &Path, url: &str, stream: &str, security: &str) -> PathBuf {
    let path = dir.join(format!("{stream}.toml"));
    let prefix = stream.to_lowercase();
    let text = format!(
        r#"
[experiment]
name = "secured"
duration = "1s"

[instruments.sig]
type = "sim"
rate_hz = 1000
channels = ["a"]
pace = "max"

[sinks.bus]
type = "nats"
inputs = ["sig"]
url = "{url}"
stream = "{stream}"
subject_prefix = "{prefix}"
ack_timeout = "1s"
retry_for = "3s"

[sinks.bus.security]
{security}
"#
    );
    std::fs::write(&path, text).expect("write experiment");
    path
}

/// `ensemble run FILE` with `env`; returns its output and run directory.
fn run_bin(file: &Path, out: &Path, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let output = Command::new(ensemble_bin())
        .arg("run")
        .arg(file)
        .arg("--quiet")
        .arg("--output")
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .expect("ensemble runs");
    let run_dir = only_run_dir(out).expect("a run directory");
    (output, run_dir)
}

/// `ensemble ingest` as a child with `args` and `env`; its stderr goes to `log`.
fn ingest_bin(
    url: &str,
    stream: &str,
    out: &Path,
    args: &[String],
    env: &[(&str, &str)],
    log: &Path,
) -> Child {
    Command::new(ensemble_bin())
        .args(["ingest", "--url", url, "--stream", stream, "--worker", "w1"])
        .args(["--subject-prefix", &stream.to_lowercase()])
        .args(["--commit-interval", "200ms", "--ack-wait", "2s", "--output"])
        .arg(out)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("log"))
        .spawn()
        .expect("ingest starts")
}

/// SIGINTs ingest, waits for it and returns its stderr.
fn stop_ingest(mut child: Child, log: &Path) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Every key-value metadata entry of every part under `run_dir`, as text.
fn parquet_metadata(run_dir: &Path, stream: &str) -> String {
    let mut text = String::new();
    for part in parts(run_dir, stream) {
        let reader = SerializedFileReader::new(File::open(&part).expect("part")).expect("parquet");
        for kv in reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
        {
            text.push_str(&format!("{}={:?}\n", kv.key, kv.value));
        }
    }
    assert!(!text.is_empty(), "parts carry metadata");
    text
}

fn assert_no_secret(secrets: &[&str], places: &[(&str, &str)]) {
    for (what, text) in places {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret appears in {what}");
        }
    }
}

/// A good run through ingest: every row arrives; returns the ingested run directory.
fn assert_delivered(report_dir: &Path, ingest_out: &Path) -> PathBuf {
    let manifest = ensemble::manifest::Manifest::read(report_dir).expect("run.json");
    assert_eq!(manifest.status, "completed", "{:?}", manifest.sinks);
    let bus = &manifest.streams["sig"].sinks["bus"];
    assert_eq!((bus.rows_written, bus.rows_lost), (ROWS, 0));
    let ingest_run = ingest_out.join(report_dir.file_name().expect("name"));
    let check = crate::nats::wait_complete(&ingest_run, Duration::from_secs(30));
    assert_eq!(check.streams["sig"].rows, ROWS);
    ingest_run
}

/// A refused run: failed, with `expect` in its stderr and the sink's error, nothing written.
fn assert_refused(output: &Output, run_dir: &Path, expect: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "the run fails");
    let manifest = ensemble::manifest::Manifest::read(run_dir).expect("run.json");
    assert_eq!(manifest.status, "failed");
    let error = manifest.sinks["bus"].error.clone().unwrap_or_default();
    assert!(
        error.contains(expect),
        "sink error names the cause: {error}"
    );
    assert!(stderr.contains(expect), "stderr names the cause: {stderr}");
    let bus = &manifest.streams["sig"].sinks["bus"];
    assert_eq!(bus.rows_written, 0, "nothing published");
    stderr
}

/// Whether JetStream stream `stream` exists on the server, asked with `options`.
fn stream_exists(url: &str, options: async_nats::ConnectOptions, stream: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = options.connect(url).await.expect("test client connects");
        async_nats::jetstream::new(client)
            .get_stream(stream)
            .await
            .is_ok()
    })
}

#[test]
fn issue_15_tls_with_client_certificates_carries_every_row_and_refuses_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let path = |p: &Path| p.display().to_string();
    let args = vec![
        "--tls".into(),
        "--tlscert".into(),
        path(&pki.server_cert),
        "--tlskey".into(),
        path(&pki.server_key),
        "--tlsverify".into(),
        "--tlscacert".into(),
        path(&pki.ca),
    ];
    let Some(server) = server(dir.path(), args) else {
        return;
    };
    let url = format!("tls://127.0.0.1:{}", server.port);
    let tls = format!(
        "tls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
        path(&pki.ca),
        path(&pki.client_cert),
        path(&pki.client_key)
    );
    let ingest_out = dir.path().join("ingested");
    let log = dir.path().join("ingest.log");
    let ingest_args: Vec<String> = vec![
        "--tls-ca-file".into(),
        path(&pki.ca),
        "--tls-cert-file".into(),
        path(&pki.client_cert),
        "--tls-key-file".into(),
        path(&pki.client_key),
    ];
    let ingest = ingest_bin(&url, "TLS", &ingest_out, &ingest_args, &[], &log);
    let file = experiment_file(dir.path(), &url, "TLS", &tls);
    let (output, run_dir) = run_bin(&file, &dir.path().join("runs"), &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ingest_run = assert_delivered(&run_dir, &ingest_out);
    let key = std::fs::read_to_string(&pki.client_key).expect("key");
    let key_body = key.lines().nth(1).expect("PEM body");
    let stderr = stop_ingest(ingest, &log);
    assert_no_secret(
        &[key_body],
        &[
            (
                "run.json",
                &std::fs::read_to_string(run_dir.join("run.json")).expect("run.json"),
            ),
            ("stderr of run", &String::from_utf8_lossy(&output.stderr)),
            ("stderr of ingest", &stderr),
            ("Parquet metadata", &parquet_metadata(&ingest_run, "sig")),
        ],
    );

    // The CA only, no client certificate: the server refuses the handshake.
    let file = experiment_file(
        dir.path(),
        &url,
        "TLS_NOCERT",
        &format!("tls_ca_file = \"{}\"", path(&pki.ca)),
    );
    let (output, run_dir) = run_bin(&file, &dir.path().join("nocert"), &[]);
    assert_refused(&output, &run_dir, "refused the connection");
    let options = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.ca.clone())
        .add_client_certificate(pki.client_cert.clone(), pki.client_key.clone())
        .require_tls(true);
    assert!(
        !stream_exists(&url, options, "TLS_NOCERT"),
        "nothing published"
    );
}

#[test]
fn issue_15_password_nkey_and_token_from_files_and_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "pw-4f1c9a77e2";
    let user_key = nkeys::KeyPair::new_user();
    let seed = user_key.seed().expect("seed");
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, &seed).expect("seed file");
    let config = dir.path().join("users.conf");
    std::fs::write(
        &config,
        format!(
            "authorization {{\n  users = [\n    {{ user: \"lab\", password: \"{password}\" }}\n    {{ nkey: \"{}\" }}\n  ]\n}}\n",
            user_key.public_key()
        ),
    )
    .expect("config");
    let Some(server) = server(dir.path(), vec!["-c".into(), config.display().to_string()]) else {
        return;
    };
    let url = server.url();

    // user + password from the environment, ingest the same way.
    let env = [("LAB_NATS_PASSWORD", password)];
    let ingest_out = dir.path().join("ingested");
    let log = dir.path().join("ingest.log");
    let ingest = ingest_bin(
        &url,
        "PW",
        &ingest_out,
        &[
            "--user".into(),
            "lab".into(),
            "--password-env".into(),
            "LAB_NATS_PASSWORD".into(),
        ],
        &env,
        &log,
    );
    let security = "user = \"lab\"\npassword_env = \"LAB_NATS_PASSWORD\"";
    let file = experiment_file(dir.path(), &url, "PW", security);
    let (output, run_dir) = run_bin(&file, &dir.path().join("runs"), &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ingest_run = assert_delivered(&run_dir, &ingest_out);
    let ingest_stderr = stop_ingest(ingest, &log);
    let run_json = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    assert_no_secret(
        &[password, &seed],
        &[
            ("run.json", &run_json),
            ("stderr of run", &String::from_utf8_lossy(&output.stderr)),
            ("stderr of ingest", &ingest_stderr),
            ("Parquet metadata", &parquet_metadata(&ingest_run, "sig")),
        ],
    );

    // The nkey seed from a file.
    let security = format!("nkey_seed_file = \"{}\"", seed_file.display());
    let file = experiment_file(dir.path(), &url, "NKEY", &security);
    let (output, run_dir) = run_bin(&file, &dir.path().join("nkey"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let manifest = ensemble::manifest::Manifest::read(&run_dir).expect("run.json");
    assert_eq!(manifest.streams["sig"].sinks["bus"].rows_written, ROWS);
    assert_no_secret(&[&seed], &[("stderr of run", &stderr)]);

    // A wrong password: refused at once, nothing published, the password nowhere.
    let wrong = "pw-wrong-0b7d3e";
    let security = "user = \"lab\"\npassword_env = \"LAB_NATS_PASSWORD\"";
    let file = experiment_file(dir.path(), &url, "WRONG", security);
    let (output, run_dir) = run_bin(
        &file,
        &dir.path().join("wrong"),
        &[("LAB_NATS_PASSWORD", wrong)],
    );
    let stderr = assert_refused(&output, &run_dir, "authorization violation");
    let run_json = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    assert_no_secret(
        &[wrong, password],
        &[("run.json", &run_json), ("stderr", &stderr)],
    );
    let good = async_nats::ConnectOptions::with_user_and_password("lab".into(), password.into());
    assert!(!stream_exists(&url, good, "WRONG"), "nothing published");

    // No credentials at all, a variable that is not set, a seed file that is missing.
    let file = experiment_file(dir.path(), &url, "NONE", "");
    let (output, run_dir) = run_bin(&file, &dir.path().join("none"), &[]);
    assert_refused(&output, &run_dir, "authorization violation");
    let file = experiment_file(
        dir.path(),
        &url,
        "UNSET",
        "token_env = \"LAB_TOKEN_NOT_SET\"",
    );
    let (output, run_dir) = run_bin(&file, &dir.path().join("unset"), &[]);
    assert_refused(
        &output,
        &run_dir,
        "environment variable `LAB_TOKEN_NOT_SET` is not set",
    );
    let missing = dir.path().join("missing.nk");
    let security = format!("nkey_seed_file = \"{}\"", missing.display());
    let file = experiment_file(dir.path(), &url, "MISSING", &security);
    let (output, run_dir) = run_bin(&file, &dir.path().join("missing"), &[]);
    assert_refused(
        &output,
        &run_dir,
        &format!("nkey_seed_file `{}`", missing.display()),
    );
}

#[test]
fn issue_15_token_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "tok-91d2c4e8a0";
    let config = dir.path().join("token.conf");
    std::fs::write(&config, format!("authorization {{ token: \"{token}\" }}\n")).expect("config");
    let Some(server) = server(dir.path(), vec!["-c".into(), config.display().to_string()]) else {
        return;
    };
    let file = experiment_file(
        dir.path(),
        &server.url(),
        "TOKEN",
        "token_env = \"LAB_TOKEN\"",
    );
    let (output, run_dir) = run_bin(&file, &dir.path().join("runs"), &[("LAB_TOKEN", token)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let run_json = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    let manifest = ensemble::manifest::Manifest::read(&run_dir).expect("run.json");
    assert_eq!(manifest.streams["sig"].sinks["bus"].rows_written, ROWS);
    assert_no_secret(&[token], &[("run.json", &run_json), ("stderr", &stderr)]);
    let (output, run_dir) = run_bin(
        &file,
        &dir.path().join("wrong"),
        &[("LAB_TOKEN", "tok-wrong")],
    );
    assert_refused(&output, &run_dir, "authorization violation");
}

/// A NATS JWT (`ed25519-nkey`) with `claims` (plus `iss`, `iat`, `jti`), signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, mut claims: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    claims["iss"] = issuer.public_key().into();
    claims["iat"] = 1_700_000_000u64.into();
    claims["jti"] = format!("{:x}", std::process::id() as u64 * 7919).into();
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64(claims.to_string().as_bytes());
    let signature = issuer
        .sign(format!("{header}.{body}").as_bytes())
        .expect("sign");
    format!("{header}.{body}.{}", b64(&signature))
}

/// A user of `account` (JWT signed by it) as a `.creds` file in `dir`; returns the file and
/// the user's seed.
fn creds_file(dir: &Path, name: &str, account: &nkeys::KeyPair) -> (PathBuf, String) {
    let user = nkeys::KeyPair::new_user();
    let user_jwt = jwt(
        account,
        serde_json::json!({"sub": user.public_key(), "name": name, "nats": {
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2}}),
    );
    let seed = user.seed().expect("seed");
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(
        &path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .expect("creds file");
    (path, seed)
}

/// A server in operator (JWT) mode, the account preloaded: a `.creds` file carries every row
/// through the sink and ingest; a user of an account the server does not trust is refused and
/// publishes nothing; the seed appears nowhere.
#[test]
fn issue_15_creds_file_in_operator_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (operator, account) = (
        nkeys::KeyPair::new_operator(),
        nkeys::KeyPair::new_account(),
    );
    let operator_jwt = jwt(
        &operator,
        serde_json::json!({"sub": operator.public_key(), "name": "lab-operator",
            "nats": {"type": "operator", "version": 2}}),
    );
    let account_jwt = jwt(
        &operator,
        serde_json::json!({"sub": account.public_key(), "name": "lab", "nats": {
            "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1, "mem_storage": -1,
                "disk_storage": -1, "streams": -1, "consumer": -1},
            "type": "account", "version": 2}}),
    );
    // JetStream needs a system account.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = jwt(
        &operator,
        serde_json::json!({"sub": system.public_key(), "name": "SYS",
            "nats": {"type": "account", "version": 2}}),
    );
    let config = dir.path().join("operator.conf");
    std::fs::write(
        &config,
        format!(
            "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {sys}: \"{system_jwt}\"\n  {}: \"{account_jwt}\"\n}}\n",
            account.public_key(),
            sys = system.public_key(),
        ),
    )
    .expect("config");
    let Some(server) = server(dir.path(), vec!["-c".into(), config.display().to_string()]) else {
        return;
    };
    let url = server.url();
    let (creds, seed) = creds_file(dir.path(), "lab", &account);

    let ingest_out = dir.path().join("ingested");
    let log = dir.path().join("ingest.log");
    let args = ["--creds-file".to_string(), creds.display().to_string()];
    let ingest = ingest_bin(&url, "CREDS", &ingest_out, &args, &[], &log);
    let security = format!("creds_file = \"{}\"", creds.display());
    let file = experiment_file(dir.path(), &url, "CREDS", &security);
    let (output, run_dir) = run_bin(&file, &dir.path().join("runs"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let ingest_run = assert_delivered(&run_dir, &ingest_out);
    let ingest_stderr = stop_ingest(ingest, &log);
    let run_json = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    assert_no_secret(
        &[&seed],
        &[
            ("run.json", &run_json),
            ("stderr of run", &stderr),
            ("stderr of ingest", &ingest_stderr),
            ("Parquet metadata", &parquet_metadata(&ingest_run, "sig")),
        ],
    );

    // A user of an account the operator never signed: refused, nothing published.
    let (stranger, stranger_seed) =
        creds_file(dir.path(), "stranger", &nkeys::KeyPair::new_account());
    let security = format!("creds_file = \"{}\"", stranger.display());
    let file = experiment_file(dir.path(), &url, "STRANGER", &security);
    let (output, run_dir) = run_bin(&file, &dir.path().join("stranger"), &[]);
    let stderr = assert_refused(&output, &run_dir, "authorization violation");
    assert_no_secret(&[&stranger_seed], &[("stderr", &stderr)]);
    let good = async_nats::ConnectOptions::with_credentials_file(creds.clone());
    let good = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(good)
        .expect("creds file");
    assert!(!stream_exists(&url, good, "STRANGER"), "nothing published");
}
