//! Registering `imc-agent` with the OS service manager (through the
//! `service-manager` crate), or, for a staged root, only writing its unit.

use crate::layout::{Layout, service_label};
use anyhow::Context;
use service_manager::{
    ServiceInstallCtx, ServiceLevel, ServiceManager, ServiceStartCtx, ServiceStatus,
    ServiceStatusCtx, ServiceStopCtx, ServiceUninstallCtx,
};
use std::path::Path;

/// What the service will run.
pub struct Registration<'a> {
    pub agent_bin: &'a Path,
    /// The systemd unit (used on Linux; launchd and Windows get theirs from service-manager).
    pub unit: &'a str,
}

/// Registers and starts the service; returns whether anything changed.
pub fn register(layout: &Layout, reg: &Registration) -> anyhow::Result<bool> {
    if layout.root.is_some() {
        return write_if_changed(&layout.unit, reg.unit);
    }
    let manager = manager()?;
    let installed_same = if cfg!(target_os = "linux") {
        std::fs::read_to_string(&layout.unit).is_ok_and(|text| text == reg.unit)
    } else {
        !matches!(query(&*manager)?, ServiceStatus::NotInstalled)
    };
    let mut changed = false;
    if !installed_same {
        manager
            .install(ServiceInstallCtx {
                label: service_label(),
                program: reg.agent_bin.to_owned(),
                args: agent_args(&layout.config),
                contents: cfg!(target_os = "linux").then(|| reg.unit.to_owned()),
                username: None,
                working_directory: None,
                environment: None,
                autostart: true,
                disable_restart_on_failure: false,
            })
            .context("registering the agent service")?;
        restart_on_failure()?;
        changed = true;
    }
    if !matches!(query(&*manager)?, ServiceStatus::Running) {
        manager
            .start(ServiceStartCtx {
                label: service_label(),
            })
            .context("starting the agent service")?;
        changed = true;
    }
    Ok(changed)
}

/// Stops and removes the service; returns whether there was one.
pub fn unregister(layout: &Layout) -> anyhow::Result<bool> {
    if layout.root.is_some() {
        return match std::fs::remove_file(&layout.unit) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", layout.unit.display())),
        };
    }
    let manager = manager()?;
    match query(&*manager)? {
        ServiceStatus::NotInstalled => return Ok(false),
        ServiceStatus::Running => manager
            .stop(ServiceStopCtx {
                label: service_label(),
            })
            .context("stopping the agent service")?,
        ServiceStatus::Stopped(_) => {}
    }
    manager
        .uninstall(ServiceUninstallCtx {
            label: service_label(),
        })
        .context("removing the agent service")?;
    Ok(true)
}

/// The service's state, in words.
pub fn describe(layout: &Layout) -> anyhow::Result<String> {
    if layout.root.is_some() {
        return Ok(if layout.unit.exists() {
            format!("staged (unit {})", layout.unit.display())
        } else {
            "not installed (staged root)".to_owned()
        });
    }
    Ok(match query(&*manager()?)? {
        ServiceStatus::NotInstalled => "not installed".to_owned(),
        ServiceStatus::Running => "running".to_owned(),
        ServiceStatus::Stopped(Some(why)) => format!("stopped ({why})"),
        ServiceStatus::Stopped(None) => "stopped".to_owned(),
    })
}

fn query(manager: &dyn ServiceManager) -> anyhow::Result<ServiceStatus> {
    manager
        .status(ServiceStatusCtx {
            label: service_label(),
        })
        .context("asking the service manager for the agent's state")
}

fn manager() -> anyhow::Result<Box<dyn ServiceManager>> {
    #[cfg(target_os = "linux")]
    let mut manager: Box<dyn ServiceManager> =
        Box::new(service_manager::SystemdServiceManager::system());
    #[cfg(not(target_os = "linux"))]
    let mut manager =
        <dyn ServiceManager>::native().context("finding this system's service manager")?;
    if !manager.available().unwrap_or(false) {
        anyhow::bail!(
            "no usable service manager on this system (systemd, launchd or the Windows service manager); \
             use --root DIR to stage the files instead"
        );
    }
    manager
        .set_level(ServiceLevel::System)
        .context("selecting the system-wide service level")?;
    Ok(manager)
}

fn agent_args(config: &Path) -> Vec<std::ffi::OsString> {
    // Windows starts the agent under its service control manager.
    let command = if cfg!(windows) { "service" } else { "run" };
    vec!["--config".into(), config.into(), command.into()]
}

#[cfg(windows)]
fn restart_on_failure() -> anyhow::Result<()> {
    // service-manager registers no failure actions; sc.exe does.
    let name = service_label().to_qualified_name();
    let status = std::process::Command::new("sc.exe")
        .args([
            "failure",
            &name,
            "reset=",
            "86400",
            "actions=",
            "restart/5000/restart/5000/restart/60000",
        ])
        .status()
        .context("running sc.exe failure")?;
    anyhow::ensure!(
        status.success(),
        "sc.exe failure {name} exited with {status}"
    );
    Ok(())
}

#[cfg(not(windows))]
fn restart_on_failure() -> anyhow::Result<()> {
    // systemd's unit says Restart=on-failure; launchd's plist gets KeepAlive from service-manager.
    Ok(())
}

/// Writes `text` to `path` unless it is already there; says whether it wrote.
pub fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}
