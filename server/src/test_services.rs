//! Where tests find the real services that `scripts/services.sh` starts
//! (PostgreSQL and Garage on loopback): variables of the process first, then
//! the env file that script writes (`$IMC_SERVICES_ENV`, by default
//! `~/.cache/imc-tools/services.env`). A missing service fails the test with
//! a hint; it never skips it.

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use std::collections::HashMap;
use std::path::PathBuf;

fn env_file() -> PathBuf {
    match std::env::var_os("IMC_SERVICES_ENV") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/imc-tools/services.env"),
    }
}

fn settings() -> HashMap<String, String> {
    let file = env_file();
    let mut out: HashMap<String, String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    for key in out.clone().keys() {
        if let Ok(value) = std::env::var(key) {
            out.insert(key.clone(), value);
        }
    }
    for key in ["IMC_TEST_DATABASE_URL", "IMC_TEST_S3_URL"] {
        if let Ok(value) = std::env::var(key) {
            out.insert(key.to_owned(), value);
        }
    }
    out
}

pub fn setting(key: &str) -> String {
    settings().remove(key).unwrap_or_else(|| {
        panic!(
            "{key} is not set and {} does not name it: run scripts/services.sh first",
            env_file().display()
        )
    })
}

/// A client for the test S3 store, from the `AWS_*` settings.
pub fn s3_builder() -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new();
    for (key, value) in settings() {
        if key.starts_with("AWS_") {
            let parsed: AmazonS3ConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            builder = builder.with_config(parsed, value);
        }
    }
    builder
}
