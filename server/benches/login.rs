//! Desk logins under the password-hashing budget, through the real server on
//! loopback: one login at a time (latency), then 4 and 64 at once from as
//! many addresses (throughput, latency, how many are refused with 429/503
//! instead of queueing without bound). Baseline from the same run: one
//! Argon2id check on one thread, outside the server, the floor of a login.
//!
//! Run: `cargo bench -p imc-server --bench login` (release build).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imc_server::config::ServerConfig;
use imc_server::store::Actor;
use imc_server::web::store::{NewUser, Role};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
const ROUND: Duration = Duration::from_secs(8);

fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One login by form (the CSRF cookie is the form's own double submit).
async fn login(client: &reqwest::Client, base: &str, password: &str) -> u16 {
    client
        .post(format!("{base}/ui/login"))
        .header("cookie", "imc_login_csrf=bench")
        .form(&[
            ("name", "bench"),
            ("password", password),
            ("_csrf", "bench"),
        ])
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// `callers` logging in over and over from their own addresses for `ROUND`
/// (a right password costs the same check as a wrong one, and wrong ones
/// would soon be slowed down by the throttle instead of the budget).
async fn round(base: &str, callers: u32, first_address: u8) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|n| {
            let base = base.to_owned();
            // A fresh address per caller and round: the throttle counts per address.
            let from = IpAddr::from([127, 0, first_address, (n + 1) as u8]);
            tokio::spawn(async move {
                let client = client_from(from);
                let mut samples = Vec::new();
                let mut refused = 0u32;
                while started.elapsed() < ROUND {
                    let t = Instant::now();
                    let status = login(&client, &base, PASSWORD).await;
                    match status {
                        303 | 401 => samples.push(t.elapsed()),
                        _ => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                (samples, refused)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (s, r) = task.await.unwrap();
        samples.extend(s);
        refused += r;
    }
    samples.sort();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{callers:>3} at once: {:>6.1} logins/s checked, p50 {:>5} ms, p99 {:>5} ms, {refused} refused (429/503)",
        samples.len() as f64 / seconds,
        percentile(&samples, 0.5).as_millis(),
        percentile(&samples, 0.99).as_millis(),
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Baseline: one Argon2id check, on one thread, outside the server.
        let hash = imc_server::web::passwords::hash_blocking(PASSWORD).unwrap();
        let mut one = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let parsed = argon2::PasswordHash::new(&hash).unwrap();
            let _ = argon2::PasswordVerifier::verify_password(
                &argon2::Argon2::default(),
                PASSWORD.as_bytes(),
                &parsed,
            );
            one.push(t.elapsed());
        }
        one.sort();
        let baseline = percentile(&one, 0.5);
        println!(
            "baseline: one Argon2id check {} ms on one thread ({:.1}/s)",
            baseline.as_millis(),
            1.0 / baseline.as_secs_f64()
        );

        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::new(dir.path().to_owned());
        let state = imc_server::open(config).await.unwrap();
        state
            .web
            .store
            .add_user(
                NewUser {
                    name: "bench".into(),
                    role: Role::SignOff,
                    site: None,
                    password_hash: hash,
                },
                &Actor("bench".into()),
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let server_stop = stop.clone();
        let server = tokio::spawn(imc_server::serve_state(state, listener, async move {
            server_stop.cancelled().await
        }));

        let client = client_from(IpAddr::from([127, 0, 0, 1]));
        let mut single = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            assert_eq!(login(&client, &base, PASSWORD).await, 303);
            single.push(t.elapsed());
        }
        single.sort();
        let p50 = percentile(&single, 0.5);
        println!(
            "  1 at a time: p50 {} ms ({:.2} of the baseline), p99 {} ms",
            p50.as_millis(),
            p50.as_secs_f64() / baseline.as_secs_f64(),
            percentile(&single, 0.99).as_millis()
        );
        round(&base, 4, 10).await;
        round(&base, 64, 11).await;
        stop.cancel();
        server.await.unwrap().unwrap();
    });
}
