//! The systemd unit that runs `imc-agent run`: started at boot, restarted
//! on failure, and confined to the folders the agent must write.

use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct UnitSpec<'a> {
    pub agent_bin: &'a Path,
    pub config: &'a Path,
    /// Everything the agent writes: its data dir, inboxes, done and quarantine folders.
    pub writable: Vec<PathBuf>,
}

pub fn render(spec: &UnitSpec) -> String {
    let mut unit = String::new();
    let writable = spec
        .writable
        .iter()
        // `-`: a folder removed later makes the agent report it, not the unit fail to start.
        .map(|p| format!("-{}", quote(p)))
        .collect::<Vec<_>>()
        .join(" ");
    // Infallible: writing to a String.
    let _ = write!(
        unit,
        "\
[Unit]
Description=IMC scan-desk agent (delivers scanned pages to the IMC server)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={agent} --config {config} run
Restart=on-failure
RestartSec=5
Environment=IMC_LOG=info
UMask=0007
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectControlGroups=yes
ReadWritePaths={writable}

[Install]
WantedBy=multi-user.target
",
        agent = quote(spec.agent_bin),
        config = quote(spec.config),
    );
    unit
}

/// A path as one quoted systemd word: `%` is a specifier and `$` a variable
/// to systemd, and backslashes and quotes are escapes.
fn quote(path: &Path) -> String {
    let mut out = String::from("\"");
    for c in path.to_string_lossy().chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_paths_with_spaces_and_specifiers() {
        let unit = render(&UnitSpec {
            agent_bin: Path::new("/opt/imc/imc-agent"),
            config: Path::new("/etc/imc agent/100%.toml"),
            writable: vec!["/srv/scans/inbox".into()],
        });
        assert!(unit.contains(
            "ExecStart=\"/opt/imc/imc-agent\" --config \"/etc/imc agent/100%%.toml\" run"
        ));
        assert!(unit.contains("ReadWritePaths=-\"/srv/scans/inbox\""));
        assert!(unit.contains("Restart=on-failure"));
        assert!(unit.contains("WantedBy=multi-user.target"));
    }
}
