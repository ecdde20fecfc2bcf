//! The agent's folders, created with the modes they need; a folder that is
//! already right is left untouched (not even re-chmodded), so installing
//! twice changes nothing.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Who may do what in a folder, as Unix modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Queue and spool: the agent only (0700).
    Private,
    /// Inbox: scanners (the folder's group) drop files, the agent takes them (0770).
    Shared,
    /// Done and quarantine: the agent writes, the group reads (0750).
    ReadableByGroup,
}

impl Access {
    pub fn mode(self) -> u32 {
        match self {
            Access::Private => 0o700,
            Access::Shared => 0o770,
            Access::ReadableByGroup => 0o750,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub path: PathBuf,
    pub access: Access,
    /// The group whose members the access grants (the scanners'); None keeps the owner's.
    pub group: Option<Group>,
}

/// A resolved group: its id on Unix, its name elsewhere (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group(pub u32);

/// Looks a group up by name.
#[cfg(unix)]
pub fn group_named(name: &str) -> anyhow::Result<Group> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(Group(group.gid.as_raw())),
        Ok(None) => anyhow::bail!("no group named {name:?} on this system"),
        Err(e) => Err(e).with_context(|| format!("looking up group {name:?}")),
    }
}

#[cfg(not(unix))]
pub fn group_named(name: &str) -> anyhow::Result<Group> {
    anyhow::bail!(
        "--scanner-group {name:?}: on Windows grant the scanner account access to the inbox folder's ACL instead"
    )
}

/// Creates or corrects `folder`; returns whether anything changed.
pub fn ensure(folder: &Folder) -> anyhow::Result<bool> {
    let path = &folder.path;
    let created = match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => false,
        Ok(_) => anyhow::bail!("{} exists and is not a folder", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating {}", path.display()))?;
            true
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let chmodded = set_mode(path, folder.access.mode())?;
    let regrouped = match folder.group {
        Some(group) => set_group(path, group)?,
        None => false,
    };
    Ok(created || chmodded || regrouped)
}

#[cfg(unix)]
fn set_group(path: &Path, group: Group) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.gid() == group.0 {
        return Ok(false);
    }
    std::os::unix::fs::chown(path, None, Some(group.0))
        .with_context(|| format!("giving {} to group {}", path.display(), group.0))?;
    Ok(true)
}

#[cfg(not(unix))]
fn set_group(_path: &Path, _group: Group) -> anyhow::Result<bool> {
    Ok(false)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o7777 == mode {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:o} on {}", path.display()))?;
    Ok(true)
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> anyhow::Result<bool> {
    // Under ProgramData the inherited ACLs already give the service (SYSTEM)
    // and administrators full control.
    Ok(false)
}

/// Removes `path` if it is an empty folder; says whether it did.
pub fn remove_if_empty(path: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Ok(false);
            }
            std::fs::remove_dir(path).with_context(|| format!("removing {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
