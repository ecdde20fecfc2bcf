//! Hostile load from callers who have not logged in: slow bodies by the
//! thousand, login floods, guessing from one address, bad enrolment codes
//! and malformed requests. The server stays reachable for everyone else,
//! its memory stays bounded, nobody is locked out by a stranger, the audit
//! trail grows by a bounded amount, and every refusal is JSON.
//!
//! Distinct client addresses are loopback addresses (127.0.0.0/8).

use crate::harness::{TOKEN, TestServer, desk_login_attempt_from};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::desk::{PASSWORD, add_user};

fn server_addr(server: &TestServer) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// A TCP connection to the server from `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

fn client_from(from: IpAddr, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Sends the headers of a request whose body then trickles, one byte every
/// two seconds, until the server answers or closes. True when it did so
/// within `patience`. `started` counts the attackers past their headers.
async fn trickle(
    from: IpAddr,
    to: SocketAddr,
    path: &str,
    declared: usize,
    patience: Duration,
    started: Arc<AtomicUsize>,
) -> bool {
    let connected = connect_from(from, to).await;
    started.fetch_add(1, Ordering::Relaxed);
    let Ok(mut stream) = connected else {
        return false;
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: imc\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {declared}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return true;
    }
    let started = Instant::now();
    let mut buf = [0u8; 512];
    while started.elapsed() < patience {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(_) => return true, // answered or closed
            Err(_) => {
                if stream.write_all(b"a").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_slow_anonymous_bodies_leave_health_and_callers_their_room() {
    let _alone = crate::harness::machine_heavy().await;
    let server = TestServer::start();
    let to = server_addr(&server);
    let (status, doc) = server
        .post(
            "/documents",
            serde_json::json!({"source_system": "erp", "doc_no": "FLOOD-1", "doc_type": "expense", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    let status_path = format!("/documents/{}/status", doc["id"]);
    // 5,000 connections from 50 addresses (more than the server's 4,096
    // connection slots), half to the login form and half to enrolment,
    // half declaring a body over the anonymous limit and half under it.
    // The attackers run on their own runtime, so that their 5,000 tasks do
    // not starve the checks below and a slow check means a slow server.
    let started = Arc::new(AtomicUsize::new(0));
    let flood = {
        let started = started.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let attackers: Vec<_> = (0..5000u32)
                    .map(|n| {
                        let from = IpAddr::from([127, 0, 1, (n % 50 + 1) as u8]);
                        let path = if n % 2 == 0 {
                            "/ui/login"
                        } else {
                            "/api/v1/agents/enroll"
                        };
                        let declared = if n % 4 < 2 { 60_000 } else { 8_000 };
                        let patience = Duration::from_secs(20);
                        tokio::spawn(trickle(from, to, path, declared, patience, started.clone()))
                    })
                    .collect();
                let mut answered = 0;
                for attacker in attackers {
                    answered += usize::from(attacker.await.unwrap());
                }
                answered
            })
        })
    };
    // The checks start once every attacker has connected: what is measured
    // is the server holding (or refusing) 5,000 slow bodies, not the
    // machine opening 5,000 sockets at once.
    let opened = Instant::now();
    while started.load(Ordering::Relaxed) < 5000 && opened.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(started.load(Ordering::Relaxed), 5000, "the flood connected");
    // This process has just opened 5,000 sockets on the same two cores the
    // server runs on: let that settle, the flood still trickling, before
    // timing the server's answers.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Throughout, health and an authenticated status call answer within a
    // second, each on a connection of its own, so a check must win a
    // connection slot as a new caller would; held slots would never answer.
    let checked = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut checks = 0;
    while checked.elapsed() < Duration::from_secs(12) {
        for (what, path, bearer) in [
            ("healthz", "/healthz".to_string(), false),
            ("status", format!("/api/v1{status_path}"), true),
        ] {
            let caller = client_from(IpAddr::from([127, 0, 0, 1]), Duration::from_secs(1));
            let mut request = caller.get(format!("{}{path}", server.base));
            if bearer {
                request = request.bearer_auth(TOKEN);
            }
            let asked = Instant::now();
            let answer = request.send().await;
            let took = asked.elapsed();
            assert!(
                answer.as_ref().is_ok_and(|r| r.status() == 200),
                "{what} {:?} into the flood, after {took:?}: {answer:?}",
                checked.elapsed()
            );
            slowest = slowest.max(took);
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("flood: {checks} rounds of checks, the slowest answered in {slowest:?}");
    assert!(checks >= 10, "only {checks} checks in 12 s");
    let answered = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    // Every slow body was answered (refused or timed out), none held for good.
    assert_eq!(answered, 5000);
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let server = TestServer::start();
    let to = server_addr(&server);
    let crowded = IpAddr::from([127, 0, 0, 5]);
    // Slow headers: each connection sends half a request line and waits.
    let mut held = Vec::new();
    for _ in 0..256 {
        let mut stream = connect_from(crowded, to).await.unwrap();
        stream.write_all(b"GET /healthz HT").await.unwrap();
        held.push(stream);
    }
    // The 257th from that address is closed at once, unanswered.
    let mut refused = connect_from(crowded, to).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the address's 257th connection was not closed: {read:?}"
    );
    // Everyone else is served, and the held ones are still open.
    let caller = client_from(IpAddr::from([127, 0, 0, 1]), Duration::from_secs(2));
    let health = caller.get(format!("{}/healthz", server.base)).send().await;
    assert!(health.is_ok_and(|r| r.status() == 200));
    let first = &mut held[0];
    first
        .write_all(b"TP/1.1\r\nHost: imc\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
        .await
        .expect("a held connection still answers")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Once the address lets go, it may connect again.
    drop(held);
    let again = client_from(crowded, Duration::from_secs(2));
    crate::harness::eventually(
        "the address connects again",
        Duration::from_secs(10),
        || {
            let request = again.get(format!("{}/healthz", server.base)).send();
            async move { request.await.ok().filter(|r| r.status() == 200) }
        },
    )
    .await;
}

/// The server process's resident memory, in MiB.
fn rss_mib(server: &TestServer) -> u64 {
    let pid = server.pid().expect("the server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test]
async fn a_login_flood_keeps_memory_bounded_and_returns_it() {
    let server = TestServer::start();
    let start = rss_mib(&server);
    // 128 at once, from 128 addresses, each with a made-up name.
    let logins: Vec<_> = (0..128u32)
        .map(|n| {
            let from = IpAddr::from([127, 0, 2, (n + 1) as u8]);
            let base = server.base.clone();
            tokio::spawn(async move {
                let answer = crate::harness::desk_login_attempt_from(
                    from,
                    &base,
                    &format!("nobody-{n}"),
                    "wrong password",
                )
                .await;
                answer.status().as_u16()
            })
        })
        .collect();
    let mut peak = start;
    let mut statuses = Vec::new();
    for login in logins {
        peak = peak.max(rss_mib(&server));
        statuses.push(login.await.unwrap());
    }
    peak = peak.max(rss_mib(&server));
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&401), "some were checked: {statuses:?}");
    assert!(
        peak < start + 200,
        "resident memory grew from {start} to {peak} MiB"
    );
    // Back within 50 MiB of the start within a minute.
    let settled =
        crate::harness::eventually("memory returned", Duration::from_secs(60), || async {
            let now = rss_mib(&server);
            (now < start + 50).then_some(now)
        })
        .await;
    eprintln!("resident memory: start {start} MiB, peak {peak} MiB, after {settled} MiB");
}

#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_owner_out() {
    let server = TestServer::start();
    add_user(&server, "wang", "admin", None);
    let stranger = IpAddr::from([127, 0, 0, 2]);
    let mut refused = 0;
    for _ in 0..20 {
        let status = desk_login_attempt_from(stranger, &server.base, "wang", "guess")
            .await
            .status()
            .as_u16();
        assert!([401, 429].contains(&status), "{status}");
        refused += usize::from(status == 429);
    }
    assert!(refused > 0, "guessing from one address is slowed down");
    // The stranger's address now waits even with the right password...
    let from_stranger = desk_login_attempt_from(stranger, &server.base, "wang", PASSWORD).await;
    assert_eq!(from_stranger.status(), 429);
    assert!(from_stranger.headers().contains_key("retry-after"));
    // ...and the owner, at their own computer, logs in at once.
    let owner = IpAddr::from([127, 0, 0, 1]);
    let from_owner = desk_login_attempt_from(owner, &server.base, "wang", PASSWORD).await;
    assert_eq!(from_owner.status(), 303);
}

/// The reasons of the `auth.failure` rows whose actor is `actor`.
fn auth_failures_from(server: &TestServer, actor: &str) -> Vec<String> {
    crate::security::audit_actions(server, "auth.failure")
        .into_iter()
        .filter(|(who, _)| who == actor)
        .map(|(_, reason)| reason)
        .collect()
}

#[tokio::test]
async fn bad_enrolment_codes_and_tokens_add_a_bounded_number_of_audit_rows() {
    let mut server = TestServer::start();
    let enroller = client_from(IpAddr::from([127, 0, 0, 3]), Duration::from_secs(10));
    let guesser = client_from(IpAddr::from([127, 0, 0, 4]), Duration::from_secs(10));
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..2000 {
        let enrol = enroller
            .post(server.url("/agents/enroll"))
            .json(&serde_json::json!({"code": format!("enr_guess{n}"), "name": "desk"}))
            .send()
            .await
            .unwrap();
        *statuses.entry(enrol.status().as_u16()).or_insert(0) += 1;
        let guess = guesser
            .get(server.url("/settings"))
            .bearer_auth(format!("imc_guess{n}"))
            .send()
            .await
            .unwrap();
        *statuses.entry(guess.status().as_u16()).or_insert(0) += 1;
    }
    assert!(
        statuses.contains_key(&403) && statuses.contains_key(&401),
        "{statuses:?}"
    );
    // Stopping writes what was counted and not yet written.
    server.stop_gracefully();
    for actor in ["ip:127.0.0.3", "ip:127.0.0.4"] {
        let rows = auth_failures_from(&server, actor);
        assert!(!rows.is_empty(), "{actor} is in the audit trail");
        assert!(rows.len() <= 100, "{actor}: {} rows", rows.len());
        eprintln!("{actor}: {} audit rows for 2,000 failures", rows.len());
    }
    let guesses = auth_failures_from(&server, "ip:127.0.0.4");
    assert!(
        guesses.iter().any(|r| r.contains("counted, not itemised")),
        "{guesses:?}"
    );
}

/// Sends `request` on a fresh connection and reads until the server closes
/// it or a second passes; returns everything it answered.
async fn raw(server: &TestServer, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(server_addr(server)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn json_error(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused_early_in_json() {
    let server = TestServer::start();
    // A huge declared body is refused before 100 Continue and before reading.
    let started = Instant::now();
    let answer = raw(
        &server,
        format!(
            "POST /api/v1/documents HTTP/1.1\r\nHost: imc\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_eq!(json_error(&answer)["error"]["code"], "payload_too_large");
    assert!(started.elapsed() < Duration::from_secs(5), "not waited for");
    // An image declared over the image limit (far under the server's body
    // limit) is refused by its route before 100 Continue, too.
    let (status, _) = server
        .put(
            "/settings",
            serde_json::json!({"max_image_bytes": 1_048_576}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, doc) = server
        .post(
            "/documents",
            serde_json::json!({"source_system": "erp", "doc_no": "BIG-1", "doc_type": "expense", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    let answer = raw(
        &server,
        format!(
            "POST /api/v1/documents/{}/images HTTP/1.1\r\nHost: imc\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: image/png\r\nExpect: 100-continue\r\nContent-Length: 10485760\r\n\r\n",
            doc["id"]
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert_eq!(json_error(&answer)["error"]["code"], "payload_too_large");
    // No Host.
    let answer = raw(&server, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(json_error(&answer)["error"]["code"], "bad_request");
    // A method the route does not take.
    let answer = raw(
        &server,
        b"DELETE /api/v1/openapi.json HTTP/1.1\r\nHost: imc\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(json_error(&answer)["error"]["code"], "method_not_allowed");
    // A very long target, and too many headers.
    let long = "a".repeat(10_000);
    let answer = raw(
        &server,
        format!(
            "GET /api/v1/documents?doc_no={long} HTTP/1.1\r\nHost: imc\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert_eq!(json_error(&answer)["error"]["code"], "uri_too_long");
    let many: String = (0..150).map(|n| format!("X-Filler-{n}: x\r\n")).collect();
    let answer = raw(
        &server,
        format!("GET /healthz HTTP/1.1\r\nHost: imc\r\nConnection: close\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(json_error(&answer)["error"]["code"], "headers_too_large");
    // The Bearer scheme in any case.
    let lower = reqwest::Client::new()
        .get(server.url("/settings"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
}
