//! Where an installed agent's files live, on the real system or under a
//! staged root.
//!
//! With `--root DIR` every path is re-rooted under DIR, and the files written
//! there name the re-rooted paths, so a staged install is self-consistent: its
//! agent can run from it, and tests can check it without touching the system.

use anyhow::{Context, bail};
use std::path::{Component, Path, PathBuf};

/// The service's name: `imc-agent` for systemd, `com.imc.agent` for launchd and Windows.
pub fn service_label() -> service_manager::ServiceLabel {
    service_manager::ServiceLabel {
        qualifier: Some("com".into()),
        organization: Some("imc".into()),
        application: "agent".into(),
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    /// `Some` for a staged install: no service manager is called.
    pub root: Option<PathBuf>,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// The systemd unit file (written by us when staged, by service-manager otherwise).
    pub unit: PathBuf,
}

impl Layout {
    pub fn new(root: Option<&Path>) -> anyhow::Result<Layout> {
        let root = match root {
            Some(root) => Some(
                std::path::absolute(root)
                    .with_context(|| format!("staging root {}", root.display()))?,
            ),
            None => None,
        };
        let base = system_base();
        let layout = Layout {
            config: rerooted(root.as_deref(), &base.config)?,
            data_dir: rerooted(root.as_deref(), &base.data_dir)?,
            unit: rerooted(
                root.as_deref(),
                &Path::new("/etc/systemd/system")
                    .join(format!("{}.service", service_label().to_script_name())),
            )?,
            root,
        };
        Ok(layout)
    }

    /// A folder named on the command line, as it will exist on this install.
    pub fn place(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let absolute =
            std::path::absolute(dir).with_context(|| format!("folder {}", dir.display()))?;
        rerooted(self.root.as_deref(), &absolute)
    }
}

struct Base {
    config: PathBuf,
    data_dir: PathBuf,
}

#[cfg(all(unix, not(target_os = "macos")))]
fn system_base() -> Base {
    Base {
        config: "/etc/imc-agent/agent.toml".into(),
        data_dir: "/var/lib/imc-agent".into(),
    }
}

#[cfg(target_os = "macos")]
fn system_base() -> Base {
    Base {
        config: "/Library/Application Support/IMC/agent.toml".into(),
        data_dir: "/Library/Application Support/IMC/data".into(),
    }
}

#[cfg(windows)]
fn system_base() -> Base {
    let program_data =
        PathBuf::from(std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into()));
    Base {
        config: program_data.join("IMC").join("agent.toml"),
        data_dir: program_data.join("IMC").join("data"),
    }
}

/// `path` (absolute) moved under `root`; refuses `..` so nothing escapes the root.
fn rerooted(root: Option<&Path>, path: &Path) -> anyhow::Result<PathBuf> {
    let Some(root) = root else {
        return Ok(path.to_owned());
    };
    let mut out = root.to_owned();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => bail!("{} leaves the staging root", path.display()),
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
        }
    }
    // A folder already inside the root (given as such) is not nested twice.
    if path.starts_with(root) {
        return Ok(path.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_paths_stay_under_the_root() {
        let layout = Layout::new(Some(Path::new("/tmp/stage"))).unwrap();
        assert!(layout.config.starts_with("/tmp/stage"));
        assert!(
            layout
                .unit
                .ends_with("etc/systemd/system/imc-agent.service")
        );
        assert_eq!(
            layout.place(Path::new("/srv/scans/inbox")).unwrap(),
            Path::new("/tmp/stage/srv/scans/inbox")
        );
        assert_eq!(
            layout.place(Path::new("/tmp/stage/inbox")).unwrap(),
            Path::new("/tmp/stage/inbox")
        );
        assert!(layout.place(Path::new("/srv/../../etc")).is_err());
    }
}
