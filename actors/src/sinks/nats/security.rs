//! Credentials and TLS of a connection to NATS, shared by the `nats` sink and `ensemble ingest`.
//!
//! Secrets are never written in the experiment file: it names a file (`creds_file`,
//! `nkey_seed_file`, TLS key) or an environment variable (`password_env`, `token_env`), and the
//! secret is read only when connecting. Nothing here prints a secret: errors name the key, the
//! file or the variable, never its content.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to authenticate to NATS and whether to use TLS (`[sinks.NAME.security]`).
///
/// ```toml
/// [sinks.bus.security]
/// creds_file = "/run/secrets/lab.creds"     # or nkey_seed_file, or user + password_env, or token_env
/// tls_ca_file = "/run/secrets/ca.pem"       # trust this CA (implies TLS)
/// tls_cert_file = "/run/secrets/client.pem" # client certificate, when the server verifies clients
/// tls_key_file = "/run/secrets/client.key"
/// ```
///
/// At most one of `creds_file`, `nkey_seed_file`, `user` (with `password_env`) and `token_env`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSecurity {
    /// A NATS credentials file (user JWT and nkey seed, as `nsc` writes it).
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU...`), for servers configured with nkey users.
    #[serde(default)]
    pub nkey_seed_file: Option<PathBuf>,
    /// User name for user/password authentication (not a secret); needs `password_env`.
    #[serde(default)]
    pub user: Option<String>,
    /// Environment variable holding the password of `user`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Environment variable holding an authentication token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate; implies TLS.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (`tls_key_file` too).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

/// Why the credentials or TLS files could not be used. Names the key and the file or
/// variable, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file named by a key cannot be read.
    #[error("{key} `{path}`: {source}")]
    File {
        /// The config key (`creds_file`, ...).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// An environment variable named by a key is not set (or not UTF-8).
    #[error("{key}: environment variable `{var}` is not set")]
    Env {
        /// The config key (`password_env`, `token_env`).
        key: &'static str,
        /// The variable's name.
        var: String,
    },
}

impl NatsSecurity {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let methods = [
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some() || self.password_env.is_some(),
            self.token_env.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            problems.push((
                "security",
                "give one of creds_file, nkey_seed_file, user + password_env, token_env"
                    .to_string(),
            ));
        }
        if self.user.is_some() != self.password_env.is_some() {
            problems.push((
                "security.password_env",
                "user and password_env go together (the password comes from the environment)"
                    .to_string(),
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            problems.push((
                "security.tls_key_file",
                "tls_cert_file and tls_key_file go together".to_string(),
            ));
        }
        for (key, var) in [
            ("security.password_env", &self.password_env),
            ("security.token_env", &self.token_env),
        ] {
            if var
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.contains('='))
            {
                problems.push((
                    key,
                    "must be the name of an environment variable".to_string(),
                ));
            }
        }
        problems
    }

    /// Whether TLS is configured (a CA or a client certificate).
    pub fn uses_tls(&self) -> bool {
        self.tls_ca_file.is_some() || self.tls_cert_file.is_some()
    }

    /// Connection options with these credentials and TLS settings: reads the files and
    /// variables now. Every file is checked here, so a missing one is reported by name before
    /// any connection is tried.
    pub async fn connect_options(&self) -> Result<async_nats::ConnectOptions, SecurityError> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(path) = &self.creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(file_err("creds_file", path))?;
        }
        if let Some(path) = &self.nkey_seed_file {
            let seed = tokio::fs::read_to_string(path)
                .await
                .map_err(file_err("nkey_seed_file", path))?;
            options = options.nkey(seed.trim().to_string());
        }
        if let (Some(user), Some(var)) = (&self.user, &self.password_env) {
            options = options.user_and_password(user.clone(), env("password_env", var)?);
        }
        if let Some(var) = &self.token_env {
            options = options.token(env("token_env", var)?);
        }
        for (key, path) in [
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
            ("tls_key_file", &self.tls_key_file),
        ] {
            if let Some(path) = path {
                tokio::fs::metadata(path)
                    .await
                    .map_err(file_err(key, path))?;
            }
        }
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.uses_tls() {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

fn file_err(
    key: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> SecurityError {
    let path = path.to_path_buf();
    move |source| SecurityError::File { key, path, source }
}

fn env(key: &'static str, var: &str) -> Result<String, SecurityError> {
    std::env::var(var).map_err(|_| SecurityError::Env {
        key,
        var: var.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_method_and_matching_pairs() {
        let s = NatsSecurity {
            creds_file: Some("a.creds".into()),
            token_env: Some("T".into()),
            user: Some("u".into()),
            tls_cert_file: Some("c.pem".into()),
            ..Default::default()
        };
        let keys: Vec<&str> = s.check().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["security", "security.password_env", "security.tls_key_file"]
        );
        assert!(NatsSecurity::default().check().is_empty());
    }

    #[tokio::test]
    async fn a_missing_file_or_variable_is_named_without_a_secret() {
        let s = NatsSecurity {
            nkey_seed_file: Some("/nonexistent/seed.nk".into()),
            ..Default::default()
        };
        let e = s.connect_options().await.expect_err("missing file");
        assert!(
            e.to_string()
                .starts_with("nkey_seed_file `/nonexistent/seed.nk`: "),
            "{e}"
        );
        let s = NatsSecurity {
            token_env: Some("ENSEMBLE_TEST_TOKEN_THAT_IS_NOT_SET".into()),
            ..Default::default()
        };
        let e = s.connect_options().await.expect_err("unset variable");
        assert_eq!(
            e.to_string(),
            "token_env: environment variable `ENSEMBLE_TEST_TOKEN_THAT_IS_NOT_SET` is not set"
        );
    }
}
