//! An archive destination on a file system: which bags it holds, and a
//! bag written so that it is never seen half done. A bag is written under
//! `.partial-<name>`, every file and folder fsynced, then renamed to its
//! name; a crash leaves only `.partial-*` folders, which the next export
//! removes before it starts.

use super::bag::{self, DESTINATION_MARKER, PARTIAL_PREFIX};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the marker file says, for a person who finds the folder.
const MARKER_TEXT: &str = "This folder is an IMC archive destination: one BagIt bag per document \
version, written by `imc-server archive export`, checked by `imc-server archive verify`.\n";

#[derive(Clone)]
pub struct Folder {
    root: PathBuf,
    /// The destination's lease: one export at a time writes here (the
    /// operating system frees it when the process ends, however it ends).
    _lease: Arc<std::fs::File>,
}

/// The file whose lock is the lease.
pub const LEASE_FILE: &str = "imc-archive.lock";

/// The versions a destination holds of each document: (version, digest).
#[derive(Debug, Default)]
pub struct Held {
    by_document: HashMap<i64, Vec<(u32, String)>>,
}

impl Held {
    /// Whether this version (by its digest) of the document is held.
    pub fn holds(&self, document_id: i64, digest: &str) -> bool {
        self.by_document
            .get(&document_id)
            .is_some_and(|versions| versions.iter().any(|(_, d)| d == digest))
    }

    /// The version number a new bag of the document gets.
    pub fn next_version(&self, document_id: i64) -> u32 {
        self.by_document
            .get(&document_id)
            .and_then(|versions| versions.iter().map(|(v, _)| *v).max())
            .map_or(1, |v| v + 1)
    }

    pub fn add(&mut self, document_id: i64, version: u32, digest: String) {
        self.by_document
            .entry(document_id)
            .or_default()
            .push((version, digest));
    }

    pub fn bags(&self) -> usize {
        self.by_document.values().map(Vec::len).sum()
    }
}

impl Folder {
    /// Opens `root` as a destination, refusing one inside `data_dir` or one
    /// that holds something other than an IMC export; creates it and its
    /// marker when new; removes what a crashed export left half written.
    pub fn open(root: &Path, data_dir: Option<&Path>) -> anyhow::Result<Folder> {
        if let Some(data_dir) = data_dir
            && let (Ok(data), Some(out)) = (data_dir.canonicalize(), absolute_target(root))
            && out.starts_with(&data)
        {
            bail!(
                "--out {} is inside the data dir {}: export somewhere else",
                root.display(),
                data_dir.display()
            );
        }
        if root.exists() {
            let marker = root.join(DESTINATION_MARKER);
            let empty = std::fs::read_dir(root)
                .with_context(|| format!("reading {}", root.display()))?
                .next()
                .is_none();
            if !empty && !marker.is_file() {
                bail!(
                    "{} holds files but no {DESTINATION_MARKER}: it is not an IMC archive \
                     destination; name an empty or new folder",
                    root.display()
                );
            }
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let marker = root.join(DESTINATION_MARKER);
        if !marker.is_file() {
            std::fs::write(&marker, MARKER_TEXT)
                .with_context(|| format!("writing {}", marker.display()))?;
            sync_dir(root)?;
        }
        let lease_path = root.join(LEASE_FILE);
        let lease = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lease_path)
            .with_context(|| format!("opening {}", lease_path.display()))?;
        match lease.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another export is writing to {}; wait for it to end",
                root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lease_path.display()));
            }
        }
        // Only now, with the lease: nothing else is writing these.
        for entry in read_dir(root)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PARTIAL_PREFIX) {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing the unfinished bag {name}"))?;
            }
        }
        Ok(Folder {
            root: root.to_path_buf(),
            _lease: Arc::new(lease),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bags the destination holds, from their names and `bag-info.txt`.
    pub fn held(&self) -> anyhow::Result<Held> {
        let mut held = Held::default();
        for entry in read_dir(&self.root)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((document_id, version)) = bag::parse_bag_name(&name) else {
                continue;
            };
            let info_path = entry.path().join(bag::BAG_INFO_FILE);
            let info = std::fs::read_to_string(&info_path)
                .with_context(|| format!("reading {}", info_path.display()))?;
            let fields = bag::parse_bag_info(&info);
            let digest = bag::info_value(&fields, "IMC-Version-Digest").unwrap_or_default();
            held.add(document_id, version, digest.to_owned());
        }
        Ok(held)
    }

    /// Writes a whole bag: every file under `.partial-<name>`, each fsynced,
    /// the folders fsynced, then renamed to `name`, and the rename made
    /// durable. Returns the bytes written. Blocking: call it off the async
    /// threads.
    pub fn write_bag(&self, name: &str, files: &[(String, Vec<u8>)]) -> anyhow::Result<u64> {
        let partial = self.root.join(format!("{PARTIAL_PREFIX}{name}"));
        let mut folders = vec![partial.clone()];
        let mut written = 0;
        for (path, bytes) in files {
            let target = partial.join(path);
            if let Some(parent) = target.parent()
                && !folders.iter().any(|f| f == parent)
            {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
                folders.push(parent.to_path_buf());
            }
            write_synced(&target, bytes)?;
            written += bytes.len() as u64;
        }
        // Deepest first, so each folder's entries are durable before its parent's.
        folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
        for folder in &folders {
            sync_dir(folder)?;
        }
        let done = self.root.join(name);
        std::fs::rename(&partial, &done)
            .with_context(|| format!("renaming {} to {}", partial.display(), done.display()))?;
        sync_dir(&self.root)?;
        Ok(written)
    }
}

fn read_dir(dir: &Path) -> anyhow::Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes a folder's entries durable (a no-op where folders cannot be
/// opened, as on Windows, whose renames are durable on their own).
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `path` made absolute with its existing part resolved, so a folder not yet
/// made is still compared by where it would be.
fn absolute_target(path: &Path) -> Option<PathBuf> {
    let mut existing = std::path::absolute(path).ok()?;
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?.to_path_buf();
    }
    let mut resolved = existing.canonicalize().ok()?;
    resolved.extend(rest.iter().rev());
    Some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_must_be_new_empty_or_an_earlier_export() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let inside = Folder::open(&data.join("archive"), Some(&data));
        assert!(
            inside
                .err()
                .unwrap()
                .to_string()
                .contains("inside the data dir")
        );
        let foreign = dir.path().join("photos");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("cat.jpg"), b"x").unwrap();
        let refused = Folder::open(&foreign, Some(&data));
        assert!(
            refused
                .err()
                .unwrap()
                .to_string()
                .contains("not an IMC archive")
        );
        assert!(foreign.join("cat.jpg").exists(), "nothing written there");
        let out = dir.path().join("out");
        Folder::open(&out, Some(&data)).unwrap();
        assert!(out.join(DESTINATION_MARKER).is_file());
        let first = Folder::open(&out, Some(&data)).expect("an earlier export opens again");
        let busy = Folder::open(&out, Some(&data)).err().unwrap().to_string();
        assert!(busy.contains("another export"), "{busy}");
        drop(first);
        Folder::open(&out, Some(&data)).expect("free once the first is done");
    }

    #[test]
    fn a_bag_is_whole_only_once_written_and_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(dir.path(), None).unwrap();
        let files = vec![
            ("data/pages/0001.png".to_owned(), b"png".to_vec()),
            (
                bag::BAG_INFO_FILE.to_owned(),
                b"IMC-Version-Digest: d1\n".to_vec(),
            ),
        ];
        assert_eq!(folder.write_bag("AP-1.7.v1", &files).unwrap(), 26);
        let held = folder.held().unwrap();
        assert!(held.holds(7, "d1") && !held.holds(7, "d2"));
        assert_eq!(held.next_version(7), 2);
        assert_eq!(held.next_version(8), 1);
        assert!(dir.path().join("AP-1.7.v1/data/pages/0001.png").is_file());
        // A crash mid-bag leaves a partial folder: not held, removed by the next open.
        std::fs::create_dir_all(dir.path().join(".partial-AP-2.8.v1/data")).unwrap();
        assert_eq!(folder.held().unwrap().bags(), 1);
        drop(folder);
        Folder::open(dir.path(), None).unwrap();
        assert!(!dir.path().join(".partial-AP-2.8.v1").exists());
    }
}
