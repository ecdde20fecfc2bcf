//! `install`, `uninstall` and `status`.

use crate::folders::{self, Access, Folder};
use crate::layout::Layout;
use crate::service::{self, Registration};
use crate::unit::{self, UnitSpec};
use anyhow::{Context, bail};
use imc_agent::config::AgentConfig;
use std::path::{Path, PathBuf};

pub struct InstallOptions {
    pub server: String,
    pub code: String,
    pub watch: Vec<PathBuf>,
    pub name: Option<String>,
    pub agent_bin: Option<PathBuf>,
    pub scanner_group: Option<String>,
    pub ca: Option<PathBuf>,
    pub insecure: bool,
}

pub fn install(layout: &Layout, options: InstallOptions) -> anyhow::Result<()> {
    let agent_bin = agent_binary(options.agent_bin)?;
    let scanners = match &options.scanner_group {
        Some(name) => Some(folders::group_named(name)?),
        None => None,
    };
    if options.watch.is_empty() {
        bail!("name at least one scanner folder with --watch DIR");
    }
    let mut watch = Vec::new();
    for dir in &options.watch {
        let dir = layout.place(dir)?;
        if !watch.contains(&dir) {
            watch.push(dir);
        }
    }
    let mut changes = Vec::new();

    let server = options.server.trim_end_matches('/');
    match AgentConfig::load(&layout.config) {
        Ok(existing) if existing.server_url != server => bail!(
            "this desk is already enrolled with {} (config {}); run `imc-installer uninstall --purge` first to move it",
            existing.server_url,
            layout.config.display()
        ),
        Ok(_) => {}
        Err(imc_agent::config::ConfigError::Missing(_)) => changes.push("enrolled".to_owned()),
        Err(e) => return Err(e.into()),
    }
    let trust = imc_agent::tls::Trust::from_args(options.ca.as_deref(), options.insecure)?;
    // Returns the existing config, without spending the code, when already enrolled.
    let mut config = tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(imc_agent::enroll::enroll(
            &layout.config,
            server,
            &options.code,
            options.name,
            trust,
        ))?;
    if config.watch != watch || config.data_dir.as_ref() != Some(&layout.data_dir) {
        config.watch = watch.clone();
        config.data_dir = Some(layout.data_dir.clone());
        config.save(&layout.config)?;
        changes.push(format!("wrote {}", layout.config.display()));
    }

    let mut folders = vec![Folder {
        path: layout.data_dir.clone(),
        access: Access::Private,
        group: None,
    }];
    for inbox in &watch {
        folders.push(Folder {
            path: inbox.clone(),
            access: Access::Shared,
            group: scanners,
        });
        for dir in [config.done_dir_for(inbox), config.quarantine_dir_for(inbox)] {
            if !folders.iter().any(|f| f.path == dir) {
                folders.push(Folder {
                    path: dir,
                    access: Access::ReadableByGroup,
                    group: scanners,
                });
            }
        }
    }
    for folder in &folders {
        if folders::ensure(folder)? {
            changes.push(format!(
                "prepared {} (mode {:o})",
                folder.path.display(),
                folder.access.mode()
            ));
        }
    }

    let unit = unit::render(&UnitSpec {
        agent_bin: &agent_bin,
        config: &layout.config,
        writable: folders.iter().map(|f| f.path.clone()).collect(),
    });
    if service::register(
        layout,
        &Registration {
            agent_bin: &agent_bin,
            unit: &unit,
        },
    )? {
        changes.push(format!(
            "registered the service ({})",
            service::describe(layout)?
        ));
    }

    // The clerk's way to the console; none when the console is off.
    match config.console_addr()? {
        Some(addr) => {
            let url = imc_agent::console::url_for(addr);
            if crate::shortcut::ensure(layout, &url)? {
                changes.push(format!("added the console shortcut ({url})"));
            }
        }
        None => {
            if crate::shortcut::remove(layout)? {
                changes.push("removed the console shortcut (the console is off)".into());
            }
        }
    }

    if changes.is_empty() {
        println!(
            "already installed: agent {} at site {}; nothing changed",
            config.agent_id, config.site
        );
    } else {
        println!(
            "installed agent {} at site {}:",
            config.agent_id, config.site
        );
        for change in changes {
            println!("  {change}");
        }
    }
    Ok(())
}

pub struct UninstallOptions {
    pub purge: bool,
    pub discard_unsent: bool,
}

pub fn uninstall(layout: &Layout, options: UninstallOptions) -> anyhow::Result<()> {
    let config = match AgentConfig::load(&layout.config) {
        Ok(config) => Some(config),
        Err(imc_agent::config::ConfigError::Missing(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if options.purge && !options.discard_unsent {
        // Checked before anything is removed, so a refusal changes nothing.
        refuse_if_unsent(&layout.data_dir)?;
    }
    if service::unregister(layout)? {
        println!("removed the agent service");
    } else {
        println!("no agent service was registered");
    }
    if crate::shortcut::remove(layout)? {
        println!("removed the console shortcut");
    }
    if !options.purge {
        println!(
            "kept the config ({}) and the queue ({}); `uninstall --purge` removes them",
            layout.config.display(),
            layout.data_dir.display()
        );
        return Ok(());
    }
    if !options.discard_unsent {
        // The service may have queued more pages until it stopped.
        refuse_if_unsent(&layout.data_dir)?;
    }
    remove_tree(&layout.data_dir)?;
    remove_file(&layout.config)?;
    if let Some(dir) = layout.config.parent() {
        folders::remove_if_empty(dir)?;
    }
    println!(
        "removed the config and the queue ({})",
        layout.data_dir.display()
    );
    // Scanned files are the customer's: only empty folders go.
    if let Some(config) = config {
        for inbox in &config.watch {
            for dir in [
                config.done_dir_for(inbox),
                config.quarantine_dir_for(inbox),
                inbox.clone(),
            ] {
                if !folders::remove_if_empty(&dir)? && dir.exists() {
                    println!("kept {} (it holds files)", dir.display());
                }
            }
        }
    }
    Ok(())
}

pub fn status(layout: &Layout) -> anyhow::Result<()> {
    println!("service: {}", service::describe(layout)?);
    match AgentConfig::load(&layout.config) {
        Ok(config) => print!("{}", imc_agent::status::render(&config)?),
        Err(imc_agent::config::ConfigError::Missing(path)) => {
            println!("agent: not enrolled (no config at {})", path.display())
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn refuse_if_unsent(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.join("queue.sqlite3").exists() {
        return Ok(());
    }
    let stats = imc_agent::queue::Queue::open(data_dir)?.stats()?;
    if stats.pages > 0 {
        bail!(
            "{} pages ({} bytes) in {} were not sent to the server yet; start the agent until \
             they are delivered, or add --discard-unsent to delete them",
            stats.pages,
            stats.bytes,
            data_dir.display()
        );
    }
    Ok(())
}

/// `imc-agent` as named, or beside this installer.
fn agent_binary(named: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match named {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locating the installer")?
            .with_file_name(format!("imc-agent{}", std::env::consts::EXE_SUFFIX)),
    };
    let path =
        std::path::absolute(&path).with_context(|| format!("agent binary {}", path.display()))?;
    if !path.is_file() {
        bail!("no imc-agent at {}; pass --agent-bin PATH", path.display());
    }
    Ok(path)
}

fn remove_tree(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
