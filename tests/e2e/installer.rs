//! `imc-installer --root`: a staged install against a real server, checked
//! with `systemd-analyze verify`, installed twice, and uninstalled with and
//! without `--purge` while a page is still waiting in the queue.

use crate::harness::{TestServer, bin, eventually};
use crate::scan;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn installer(root: &Path, args: &[&str]) -> Output {
    Command::new(bin("imc-installer"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("IMC_LOG", "warn")
        .output()
        .expect("run imc-installer")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every path under `root` with its mode, modification time and contents.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, std::time::SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            let bytes = if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            out.insert(
                path,
                (meta.permissions().mode(), meta.modified().unwrap(), bytes),
            );
        }
    }
    out
}

#[tokio::test]
async fn staged_install_verifies_is_idempotent_and_uninstall_keeps_unsent_pages() {
    let mut server = TestServer::start();
    let code = server.enrollment_code("desk-site").await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let agent = bin("imc-agent");
    let install_args = [
        "install",
        "--server",
        &server.base,
        "--code",
        &code,
        "--watch",
        "/srv/scans/inbox",
        "--name",
        "desk-7",
        // Debian's `users` group (the tests run as root, which may give folders away).
        "--scanner-group",
        "users",
        "--agent-bin",
        agent.to_str().unwrap(),
        // Loopback over plain http.
        "--insecure",
    ];
    let first = installer(&root, &install_args);
    assert!(first.status.success(), "install: {}", text(&first));

    let unit = root.join("etc/systemd/system/imc-agent.service");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (installed by scripts/setup.sh)");
    assert!(verify.status.success(), "verify: {}", text(&verify));
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(unit_text.contains("Restart=on-failure"), "{unit_text}");
    assert!(
        unit_text.contains("WantedBy=multi-user.target"),
        "{unit_text}"
    );

    // The clerk finds the console in the applications menu.
    let shortcut = root.join("usr/share/applications/imc-desk-console.desktop");
    let entry = std::fs::read_to_string(&shortcut).expect("the console shortcut");
    assert!(entry.starts_with("[Desktop Entry]\nType=Link\n"), "{entry}");
    assert!(entry.contains("URL=http://127.0.0.1:8411/"), "{entry}");

    let config_path = root.join("etc/imc-agent/agent.toml");
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let inbox = root.join("srv/scans/inbox");
    assert_eq!(config["server_url"].as_str(), Some(server.base.as_str()));
    assert_eq!(
        config["watch"].as_array().unwrap()[0].as_str(),
        inbox.to_str()
    );
    assert_eq!(mode(&config_path), 0o600, "the config holds the token");
    assert_eq!(mode(&root.join("var/lib/imc-agent")), 0o700);
    assert_eq!(mode(&inbox), 0o770);
    assert_eq!(mode(&root.join("srv/scans/done")), 0o750);
    assert_eq!(mode(&root.join("srv/scans/quarantine")), 0o750);
    let users_gid: u32 = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("users:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|gid| gid.parse().ok())
        .expect("a `users` group");
    for dir in ["srv/scans/inbox", "srv/scans/done", "srv/scans/quarantine"] {
        use std::os::unix::fs::MetadataExt;
        let gid = std::fs::metadata(root.join(dir)).unwrap().gid();
        assert_eq!(gid, users_gid, "{dir} belongs to the scanners' group");
    }
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        std::fs::metadata(root.join("var/lib/imc-agent"))
            .unwrap()
            .gid(),
        users_gid,
        "the queue stays private"
    );

    // The same command again: the code is spent, but the desk is enrolled already.
    let before = snapshot(&root);
    let second = installer(&root, &install_args);
    assert!(second.status.success(), "second install: {}", text(&second));
    assert!(
        text(&second).contains("nothing changed"),
        "{}",
        text(&second)
    );
    assert_eq!(snapshot(&root), before, "a second install changed files");

    // A page waits in the queue: the server is gone when the agent takes it.
    server.kill();
    let mut running = Command::new(&agent)
        .arg("--config")
        .arg(&config_path)
        .arg("run")
        // It cannot reach the server on purpose; its retries are not news.
        .env("IMC_LOG", "error")
        .spawn()
        .unwrap();
    std::fs::write(inbox.join("scan-1.png"), scan::png(&scan::text_page(3))).unwrap();
    let status = || {
        let out = installer(&root, &["status"]);
        assert!(out.status.success(), "status: {}", text(&out));
        text(&out)
    };
    eventually("the page to be queued", Duration::from_secs(30), || async {
        status().contains("queue: 1 pages").then_some(())
    })
    .await;
    running.kill().unwrap();
    running.wait().unwrap();
    assert!(status().contains("service: staged"), "{}", status());

    let plain = installer(&root, &["uninstall"]);
    assert!(plain.status.success(), "uninstall: {}", text(&plain));
    assert!(!unit.exists(), "uninstall removes the unit");
    assert!(!shortcut.exists(), "uninstall removes the console shortcut");
    assert!(
        config_path.exists(),
        "uninstall without --purge keeps the config"
    );
    assert!(status().contains("queue: 1 pages"), "{}", status());

    let refused = installer(&root, &["uninstall", "--purge"]);
    assert!(
        !refused.status.success(),
        "purge with an unsent page must refuse"
    );
    assert!(text(&refused).contains("not sent"), "{}", text(&refused));
    assert!(config_path.exists() && root.join("var/lib/imc-agent/queue.sqlite3").exists());

    let purged = installer(&root, &["uninstall", "--purge", "--discard-unsent"]);
    assert!(purged.status.success(), "purge: {}", text(&purged));
    assert!(!config_path.exists());
    assert!(!root.join("var/lib/imc-agent").exists());
    assert!(!root.join("srv/scans/done").exists(), "empty folders go");
    assert!(
        inbox.join("scan-1.png").exists(),
        "the scanned file itself is never deleted"
    );
}

/// The units the Debian packages ship pass `systemd-analyze verify`, with
/// their `/usr/bin` programs pointed at this build's.
#[test]
fn packaged_units_verify() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (unit, program) in [
        ("agent/debian/imc-agent.service", "imc-agent"),
        ("server/debian/imc-server.service", "imc-server"),
    ] {
        let contents = std::fs::read_to_string(workspace.join(unit)).unwrap();
        let packaged = format!("/usr/bin/{program}");
        assert!(contents.contains(&packaged), "{unit} runs {packaged}");
        let staged = tmp.path().join(Path::new(unit).file_name().unwrap());
        std::fs::write(
            &staged,
            contents.replace(&packaged, bin(program).to_str().unwrap()),
        )
        .unwrap();
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&staged)
            .output()
            .expect("systemd-analyze (installed by scripts/setup.sh)");
        assert!(verify.status.success(), "{unit}: {}", text(&verify));
    }
}
