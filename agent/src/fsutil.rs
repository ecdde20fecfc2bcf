//! Durable file operations the agent relies on.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that after a crash the file is whole or absent.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // NTFS journals renames; Windows offers no directory fsync.
    Ok(())
}

/// Moves a file into `dir`, keeping its name and adding `-1`, `-2`... when
/// the name is taken, so nothing already there is overwritten.
pub fn move_into(path: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let stem = Path::new(name)
        .file_stem()
        .unwrap_or(name)
        .to_string_lossy()
        .into_owned();
    let ext = Path::new(name)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()));
    for n in 0..10_000u32 {
        let candidate = match n {
            0 => dir.join(name),
            n => dir.join(format!("{stem}-{n}{}", ext.as_deref().unwrap_or(""))),
        };
        if candidate.exists() {
            continue;
        }
        match std::fs::rename(path, &candidate) {
            Ok(()) => {
                sync_dir(dir)?;
                return Ok(candidate);
            }
            // Another volume: copy durably, then remove the original.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let bytes = std::fs::read(path)?;
                write_durably(&candidate, &bytes)?;
                std::fs::remove_file(path)?;
                return Ok(candidate);
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for {} in {}",
        name.to_string_lossy(),
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_into_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        for i in 0..3 {
            let src = dir.path().join("scan.jpg");
            std::fs::write(&src, format!("{i}")).unwrap();
            move_into(&src, &done).unwrap();
        }
        for (name, content) in [("scan.jpg", "0"), ("scan-1.jpg", "1"), ("scan-2.jpg", "2")] {
            assert_eq!(std::fs::read_to_string(done.join(name)).unwrap(), content);
        }
    }
}
