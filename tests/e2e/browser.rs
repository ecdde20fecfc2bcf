//! Runs a script of `tests/browser/` (headless Chromium through
//! playwright-core) beside a test: the script prints a line at each step it
//! reached, and the test acts on it (drops a scan, stops a server).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Runs `script` with `env` until it prints `done`, calling `step` with every
/// line it prints; fails the test with the script's stderr if it exits
/// without `done` or runs past `limit`. Returns the lines.
pub async fn drive(
    script: &str,
    env: &[(&str, String)],
    done: &str,
    limit: Duration,
    mut step: impl AsyncFnMut(&str),
) -> Vec<String> {
    let mut node = Command::new("node");
    node.arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = node
        .spawn()
        .expect("run node (installed by scripts/setup.sh, with tests/browser's npm packages)");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("browser: {line}");
            let _ = tx.send(line);
        }
    });
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });

    let deadline = Instant::now() + limit;
    let mut lines: Vec<String> = Vec::new();
    while !lines.iter().any(|l| l == done) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                step(&line).await;
                lines.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if child.try_wait().unwrap().is_none() && Instant::now() > deadline {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        status.success() && lines.iter().any(|l| l == done),
        "browser test {script} failed ({status}):\n{errors}\nstdout: {lines:?}"
    );
    lines
}
