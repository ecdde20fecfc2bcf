//! The sign-off desk in a real browser: the real server and agent, staff
//! users made with `imc-server user add`, and `tests/browser/desk.mjs`
//! driving Debian's headless Chromium through playwright-core.
//!
//! `IMC_SCREENSHOTS=DIR` makes the browser script save the main pages there
//! (`scripts/screenshots.sh` uses it for `docs/screenshots/`).

use crate::browser;
use crate::harness::{self, TestAgent, TestServer, bin, eventually};
use crate::scan;
use image::{GrayImage, Luma};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
pub(crate) const PASSWORD: &str = "desk-password-1";

pub(crate) fn add_user(server: &TestServer, name: &str, role: &str, site: Option<&str>) {
    let mut command = Command::new(bin("imc-server"));
    command
        .args(["user", "add", "--data-dir"])
        .arg(&server.data_dir)
        .args(["--name", name, "--role", role, "--password", PASSWORD]);
    if let Some(site) = site {
        command.args(["--site", site]);
    }
    let output = command.output().expect("run imc-server user add");
    assert!(
        output.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("user {name} added")));
}

#[tokio::test]
async fn user_add_refuses_bad_input_and_duplicates() {
    let server = TestServer::start();
    add_user(&server, "zhao", "signoff", None);
    for (args, why) in [
        (vec!["--name", "zhao", "--role", "signoff"], "exists"),
        (vec!["--name", "qian", "--role", "boss"], "unknown role"),
        (vec!["--name", "sun", "--role", "clerk"], "needs --site"),
    ] {
        let output = Command::new(bin("imc-server"))
            .args(["user", "add", "--data-dir"])
            .arg(&server.data_dir)
            .args(&args)
            .args(["--password", PASSWORD])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{why}: {args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error:"), "{why}: {stderr}");
    }
    // The desk answers a login form without its token with 403, and a wrong
    // password with 401; the API's bearer tokens keep working beside it.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = format!("{}/ui/login", server.base);
    let r = client
        .post(&login)
        .form(&[("name", "zhao"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = client.get(&login).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let attempt = |password: &'static str| {
        client
            .post(&login)
            .header("cookie", format!("imc_login_csrf={token}"))
            .form(&[("name", "zhao"), ("password", password), ("_csrf", &token)])
            .send()
    };
    assert_eq!(attempt("wrong password").await.unwrap().status(), 401);
    let ok = attempt(PASSWORD).await.unwrap();
    assert_eq!(ok.status(), 303);
    assert!(
        ok.headers().get_all("set-cookie").iter().any(|c| c
            .to_str()
            .unwrap()
            .starts_with("imc_session=ses_")
            && c.to_str().unwrap().contains("HttpOnly; SameSite=Strict"))
    );
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("imc_session="))
        .unwrap();
    // The event stream refuses another origin, and serves its own.
    let events = format!("{}/ui/events", server.base);
    let foreign = client
        .get(&events)
        .header("cookie", &session)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let own = client
        .get(&events)
        .header("cookie", &session)
        .header("origin", server.base.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["content-type"], "text/event-stream");
    drop(own);
    // The API's bearer tokens keep working beside the desk; a desk cookie is no API credential.
    let (status, _) = server.get("/settings").await;
    assert_eq!(status, 200);
    let r = client
        .get(server.url("/settings"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Guessing is slowed down: after four wrong passwords from one address,
    // even the right one waits (`hostile.rs` has the rest of the rules).
    for _ in 0..4 {
        assert_eq!(attempt("guess").await.unwrap().status(), 401);
    }
    assert_eq!(attempt(PASSWORD).await.unwrap().status(), 429);
}

fn blank_page() -> Vec<u8> {
    scan::png(&GrayImage::from_pixel(1240, 1754, Luma([255])))
}

#[tokio::test]
async fn sign_off_desk_in_a_real_browser() {
    let server = TestServer::start();
    add_user(&server, "wang", "signoff", None);
    add_user(&server, "li", "clerk", Some("test-site"));
    add_user(&server, "boss", "admin", None);
    let live = server.match_document("EXP-UI-0001").await;
    let live_id = live["id"].as_i64().unwrap();
    let target = server.match_document("EXP-UI-0002").await;
    let target_id = target["id"].as_i64().unwrap();

    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    // Paper without a cover: the exception queue.
    agent.drop_file("stray_0001.png", &scan::png(&scan::text_page(31)));
    agent.drop_file("stray_0002.png", &scan::png(&scan::text_page(32)));
    eventually("an unmatched packet", WAIT, || async {
        let (_, list) = server.get("/packets?state=unmatched").await;
        list["packets"]
            .as_array()
            .filter(|p| p.len() == 1 && p[0]["page_count"] == 2)
            .map(|_| ())
    })
    .await;

    let env = [
        ("IMC_URL", server.base.clone()),
        ("IMC_SIGNOFF_USER", "wang".to_owned()),
        ("IMC_SIGNOFF_PASSWORD", PASSWORD.to_owned()),
        ("IMC_CLERK_USER", "li".to_owned()),
        ("IMC_CLERK_PASSWORD", PASSWORD.to_owned()),
        ("IMC_ADMIN_USER", "boss".to_owned()),
        ("IMC_ADMIN_PASSWORD", PASSWORD.to_owned()),
        ("IMC_LIVE_DOC_NO", "EXP-UI-0001".to_owned()),
        ("IMC_ATTACH_DOC_NO", "EXP-UI-0002".to_owned()),
    ];
    let mut dropped = false;
    browser::drive(
        "desk.mjs",
        &env,
        "DESK OK",
        Duration::from_secs(120),
        async |line| {
            if line == "READY" && !dropped {
                // The browser waits on the queue page: now the packet arrives.
                let (_, cover) = server
                    .get_bytes(&format!("/documents/{live_id}/cover.png"))
                    .await;
                agent.drop_file("live_0001.png", &cover);
                agent.drop_file("live_0002.png", &scan::png(&scan::text_page(41)));
                agent.drop_file("live_0003.png", &blank_page());
                agent.drop_file("live_0004.png", &scan::png(&scan::text_page(42)));
                dropped = true;
            }
        },
    )
    .await;

    // What the browser did is what the API sees.
    let (_, doc) = server.get(&format!("/documents/{live_id}")).await;
    assert_eq!(doc["status"], "rejected");
    assert_eq!(doc["reject_reason"], "Page 2 is blurred");
    let (_, audit) = server.get(&format!("/documents/{live_id}/audit")).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "user:wang" && e["action"] == "reject"),
        "{audit}"
    );
    // Attached by hand, signed off, and the sign-off revoked: matched again.
    let (_, doc) = server.get(&format!("/documents/{target_id}")).await;
    assert_eq!(doc["status"], "matched");
    let (_, audit) = server.get(&format!("/documents/{target_id}/audit")).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "user:boss")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["sign-off", "unsign"], "{audit}");
    assert_eq!(doc["images"].as_array().unwrap().len(), 2);
    let (_, list) = server.get("/packets?state=unmatched").await;
    assert_eq!(list["packets"], json!([]));
}

/// `imc-server user disable|enable|password` against a running server: the
/// change holds at the next request, with no restart.
#[tokio::test]
async fn disabled_users_and_changed_passwords_end_their_sessions() {
    let server = TestServer::start();
    add_user(&server, "wang", "signoff", None);
    add_user(&server, "root", "admin", None);
    let user_cli = |args: &[&str]| {
        let output = Command::new(bin("imc-server"))
            .args(["user", args[0], "--data-dir"])
            .arg(&server.data_dir)
            .args(&args[1..])
            .output()
            .expect("run imc-server user");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };

    let session = harness::desk_login(&server.base, "wang", PASSWORD).await;
    assert!(opens_queue(&server.base, &session).await);
    let (ok, said) = user_cli(&["disable", "--name", "wang"]);
    assert!(ok && said.contains("user wang disabled"), "{said}");
    assert!(
        !opens_queue(&server.base, &session).await,
        "a disabled user's session ended"
    );
    assert_eq!(login_status(&server.base, "wang", PASSWORD).await, 401);

    let (ok, said) = user_cli(&["enable", "--name", "wang"]);
    assert!(ok && said.contains("user wang enabled"), "{said}");
    let session = harness::desk_login(&server.base, "wang", PASSWORD).await;

    let new_password = "a-new-desk-password";
    let (ok, said) = user_cli(&["password", "--name", "wang", "--password", new_password]);
    assert!(
        ok && said.contains("password of user wang changed"),
        "{said}"
    );
    assert!(
        !opens_queue(&server.base, &session).await,
        "the old session ended"
    );
    assert_eq!(login_status(&server.base, "wang", PASSWORD).await, 401);
    let session = harness::desk_login(&server.base, "wang", new_password).await;
    assert!(opens_queue(&server.base, &session).await);

    for (args, expected) in [
        (
            vec!["disable", "--name", "root"],
            "root is the last enabled administrator",
        ),
        (vec!["disable", "--name", "nobody"], "user nobody not found"),
        (
            vec!["password", "--name", "wang", "--password", "short"],
            "at least",
        ),
    ] {
        let (ok, said) = user_cli(&args);
        assert!(!ok && said.contains(expected), "{args:?}: {said}");
    }
}

/// The admin page's Disable and Enable buttons, for a user with a CJK name
/// (the name travels percent-encoded in the form's path).
#[tokio::test]
async fn an_admin_disables_and_enables_a_user_from_the_admin_page() {
    let server = TestServer::start();
    add_user(&server, "王伟", "signoff", None);
    add_user(&server, "root", "admin", None);
    let client = harness::no_redirects();
    let admin = harness::desk_login(&server.base, "root", PASSWORD).await;
    let wang = harness::desk_login(&server.base, "王伟", PASSWORD).await;
    let page = |session: String| {
        let (client, url) = (client.clone(), format!("{}/ui/admin", server.base));
        async move {
            let r = client
                .get(&url)
                .header("cookie", session)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let html = page(admin.clone()).await;
    let csrf = html
        .split(r#"name="_csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field on the admin page")
        .to_owned();
    let disable = "/ui/admin/users/%E7%8E%8B%E4%BC%9F/disable";
    assert!(html.contains(disable), "a Disable button for 王伟");
    let post = |path: String| {
        let (client, admin, csrf) = (client.clone(), admin.clone(), csrf.clone());
        let url = format!("{}{path}", server.base);
        async move {
            client
                .post(&url)
                .header("cookie", admin)
                .form(&[("_csrf", csrf.as_str())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(disable.into()).await, 303);
    assert!(
        !opens_queue(&server.base, &wang).await,
        "王伟's session ended"
    );
    assert_eq!(login_status(&server.base, "王伟", PASSWORD).await, 401);
    let html = page(admin.clone()).await;
    let listed = html.split(r#"id="disabled-users""#).nth(1).unwrap_or("");
    assert!(listed.contains("王伟"), "王伟 under the disabled users");

    // Not yourself, and not a name that does not exist.
    assert_eq!(post("/ui/admin/users/root/disable".into()).await, 400);
    assert_eq!(post("/ui/admin/users/nobody/disable".into()).await, 404);

    assert_eq!(
        post("/ui/admin/users/%E7%8E%8B%E4%BC%9F/enable".into()).await,
        303
    );
    harness::desk_login(&server.base, "王伟", PASSWORD).await;
}

async fn login_status(base: &str, name: &str, password: &str) -> u16 {
    harness::desk_login_attempt(base, name, password)
        .await
        .status()
        .as_u16()
}

/// Whether the session cookie still opens the sign-off queue.
async fn opens_queue(base: &str, session: &str) -> bool {
    harness::no_redirects()
        .get(format!("{base}/ui/queue"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

/// `/ui/`, unknown paths and paths that name nothing get the desk's own
/// pages (not an empty 404 or a parser's message); the icon is served.
#[tokio::test]
async fn unknown_and_malformed_desk_paths_get_the_desk_s_own_pages() {
    let server = TestServer::start();
    add_user(&server, "wang", "signoff", None);
    let session = crate::harness::desk_login(&server.base, "wang", PASSWORD).await;
    let client = crate::harness::no_redirects();
    let get = |path: &str| {
        client
            .get(format!("{}{path}", server.base))
            .header("cookie", &session)
            .send()
    };
    let slash = get("/ui/").await.unwrap();
    assert_eq!(slash.status(), 303);
    assert_eq!(slash.headers()["location"], "/ui/queue");
    for (path, status) in [
        ("/ui/nowhere", 404),
        ("/ui/documents/abc", 404),
        ("/ui/documents/99999999999999999999", 404),
        ("/ui/images/x/thumb", 404),
    ] {
        let answer = get(path).await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
        let page = answer.text().await.unwrap();
        assert!(page.contains("<html"), "{path}: a desk page: {page}");
        assert!(page.contains("/ui/queue"), "{path}: a way back: {page}");
        assert!(!page.contains("Cannot parse"), "{path}: {page}");
    }
    let icon = get("/favicon.ico").await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");

    // Times say which zone they are in: UTC as sent, the exact instant
    // kept for the browser's script to show in local time.
    let made = server.match_document("TZ-1").await;
    let (_, doc) = server.get(&format!("/documents/{}", made["id"])).await;
    let page = get(&format!("/ui/documents/{}", doc["id"]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stamp = doc["created_at"].as_str().unwrap();
    let shown = format!("{} UTC</time>", stamp[..16].replace('T', " "));
    assert!(
        page.contains(&format!("<time datetime=\"{stamp}\">{shown}")),
        "{stamp}: {page}"
    );

    // The history in Chinese: actions and who did them in words, not codes.
    let (_, basic) = server
        .post(
            "/documents",
            serde_json::json!({"source_system": "ERP", "doc_no": "ZH-1", "doc_type": "x", "org": "HQ"}),
        )
        .await;
    let zh = get("/ui/lang/zh").await.unwrap();
    let lang_cookie = crate::harness::set_cookie(&zh, "imc_lang").expect("the language cookie");
    let page = client
        .get(format!("{}/ui/documents/{}", server.base, basic["id"]))
        .header("cookie", format!("{session}; {lang_cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("创建单据"), "{page}");
    assert!(page.contains("接口令牌"), "{page}");
    assert!(
        page.contains("纸质扫描，按封面匹配"),
        "the image mode in words: {page}"
    );
    assert!(!page.contains("document.create"), "{page}");
}

/// Pages that came with no cover sheet say so on the exception queue and
/// their packet's page, instead of a bare "—"; the list's count says what
/// it counts.
#[tokio::test]
async fn a_packet_without_a_cover_says_so() {
    let server = TestServer::start();
    add_user(&server, "li", "signoff", None);
    let mut agent = crate::harness::TestAgent::enroll(&server).await;
    agent.start();
    agent.drop_file(
        "scan_0001.png",
        &crate::scan::png(&crate::scan::text_page(5)),
    );
    let packet = crate::harness::eventually(
        "an unmatched packet",
        std::time::Duration::from_secs(60),
        || async {
            let (_, list) = server.get("/packets?state=unmatched").await;
            list["packets"]
                .as_array()
                .and_then(|p| p.first())
                .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        },
    )
    .await;
    let session = crate::harness::desk_login(&server.base, "li", PASSWORD).await;
    let client = crate::harness::no_redirects();
    let page = |path: String| {
        let request = client
            .get(format!("{}{path}", server.base))
            .header("cookie", &session)
            .send();
        async move { request.await.unwrap().text().await.unwrap() }
    };
    let list = page("/ui/packets".into()).await;
    assert!(list.contains("no cover sheet"), "{list}");
    assert!(list.contains("packets waiting for a document"), "{list}");
    assert!(!list.contains(">—<"), "{list}");
    let shown = page(format!("/ui/packets/{packet}")).await;
    assert!(shown.contains("Packet no cover sheet"), "{shown}");
}
