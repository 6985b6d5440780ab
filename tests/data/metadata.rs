//! Run metadata: `--meta` over the file, into run.json and every Parquet file; secrets refused.

use super::*;

const FILE: &str = r#"
[experiment]
name = "meta"
duration = "300ms"

[experiment.metadata]
sample = "A1"
operator = "Ada"

[instruments.a]
type = "sim"
rate_hz = 100

[instruments.b]
type = "sim"
rate_hz = 10

[sinks.store]
type = "parquet"
inputs = ["a", "b"]
"#;

#[test]
fn meta_overrides_the_file_and_reaches_every_parquet_file() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("meta.toml");
    std::fs::write(&file, FILE).expect("write");
    let out = work.path().join("runs");
    ok_stdout(&ensemble(&[
        &"run",
        &file,
        &"--quiet",
        &"--output",
        &out,
        &"--meta",
        &"sample=B7",
        &"--meta",
        &"temperature_k=4.2",
        &"--meta",
        &"cooled=true",
    ]));
    let run_dir = only_run_dir(&out).expect("run dir");
    let manifest = ensemble::manifest::Manifest::read(&run_dir).expect("manifest");
    let want = serde_json::json!({
        "sample": "B7", "operator": "Ada", "temperature_k": 4.2, "cooled": true
    });
    assert_eq!(
        serde_json::to_value(&manifest.metadata).expect("json"),
        want
    );
    let mut files = 0;
    for stream in ["a", "b"] {
        for part in parts(&run_dir, stream) {
            let entry = file_metadata_value(&part, "ensemble.metadata")
                .unwrap_or_else(|| panic!("{}: no ensemble.metadata", part.display()));
            let got: serde_json::Value = serde_json::from_str(&entry).expect("JSON entry");
            assert_eq!(got, want, "{}", part.display());
            files += 1;
        }
    }
    assert!(files >= 2);
}

#[test]
fn secret_looking_keys_and_non_scalar_values_are_refused_before_anything_runs() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("meta.toml");
    std::fs::write(&file, FILE).expect("write");
    let out = work.path().join("runs");
    let refused = ensemble(&[
        &"run",
        &file,
        &"--output",
        &out,
        &"--meta",
        &"api_token=abc",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("api_token") && stderr.contains("looks like a secret"),
        "{stderr}"
    );
    assert!(!out.exists(), "no run directory");

    let bad = FILE.replace(
        "operator = \"Ada\"",
        "db_password = \"hunter2\"\ntags = [1, 2]",
    );
    std::fs::write(&file, bad).expect("write");
    let refused = ensemble(&[&"validate", &file]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let name = file.display().to_string();
    assert!(
        stderr.contains(&format!("{name}:8:1: experiment.metadata.db_password")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:9:8: experiment.metadata.tags: must be a scalar"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the secret is not echoed: {stderr}"
    );
}
