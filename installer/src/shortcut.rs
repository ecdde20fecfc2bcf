//! The shortcut to the clerk's console, where a desk user finds it: a
//! desktop entry in the applications menu (Linux), a URL in the Start menu
//! (Windows). It opens the console's address from the agent's config.

use crate::layout::Layout;
use anyhow::Context;
use std::path::PathBuf;

/// Where the shortcut goes on this system, re-rooted for a staged install.
pub fn path(layout: &Layout) -> anyhow::Result<Option<PathBuf>> {
    let Some(system) = system_path() else {
        return Ok(None);
    };
    layout.place(&system).map(Some)
}

#[cfg(all(unix, not(target_os = "macos")))]
fn system_path() -> Option<PathBuf> {
    Some("/usr/share/applications/imc-desk-console.desktop".into())
}

#[cfg(windows)]
fn system_path() -> Option<PathBuf> {
    let program_data =
        PathBuf::from(std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into()));
    Some(
        program_data
            .join("Microsoft")
            .join("Windows")
            .join("Start Menu")
            .join("Programs")
            .join("IMC scan desk.url"),
    )
}

#[cfg(target_os = "macos")]
fn system_path() -> Option<PathBuf> {
    None
}

/// The shortcut's text for `url`.
pub fn render(url: &str) -> String {
    if cfg!(windows) {
        format!("[InternetShortcut]\r\nURL={url}\r\n")
    } else {
        format!(
            "[Desktop Entry]\nType=Link\nName=IMC scan desk\nName[zh_CN]=IMC 扫描台\n\
             Comment=What the scan desk sent, live\nComment[zh_CN]=扫描台实时状态\n\
             Icon=scanner\nURL={url}\n"
        )
    }
}

/// Writes the shortcut when it is missing or different; true when it wrote.
pub fn ensure(layout: &Layout, url: &str) -> anyhow::Result<bool> {
    let Some(path) = path(layout)? else {
        return Ok(false);
    };
    let text = render(url);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Removes the shortcut; true when there was one.
pub fn remove(layout: &Layout) -> anyhow::Result<bool> {
    let Some(path) = path(layout)? else {
        return Ok(false);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
