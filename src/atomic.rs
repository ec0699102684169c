//! Files that appear whole or not at all: written to a temporary file in the
//! target's directory, synced, then renamed over the target. Readers (the
//! engine loading an adapter, training reading an image) never see half a file.
//! Every rename here is followed by a sync of the directory, so it survives a
//! crash too, and a directory created on the way is synced into its parent.
//! Temporary files are named `TEMP_PREFIX…`; one left by a crash is never
//! renamed, so stores sweep them (`crate::images::ImageStore::clean_temp`).

use std::io::Write;
use std::path::Path;

/// The name prefix of every temporary file written here.
pub const TEMP_PREFIX: &str = ".tmp.";

/// Writes `path` atomically with what `fill` writes, replacing any file there.
/// The parent directory is created when missing.
pub fn write_with<E: From<std::io::Error>>(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), E>,
) -> Result<(), E> {
    let mut tmp = temp_beside(path)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(sync_parent(path)?)
}

/// Writes `bytes` to `path` atomically, replacing any file there.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |f: &mut std::fs::File| f.write_all(bytes))
}

/// Writes `bytes` to `path` atomically unless a file is there already
/// (content-addressed stores: the same name always holds the same bytes).
/// Returns whether this call created it. Either way the file is durable
/// once this returns.
pub fn write_once(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let mut tmp = temp_beside(path)?;
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // `persist_noclobber` is renameat2(RENAME_NOREPLACE) where the file
    // system has it, else link + unlink: never a window with a half file.
    match tmp.persist_noclobber(path) {
        Ok(_) => sync_parent(path).map(|()| true),
        // Another writer renamed it in and may have crashed before syncing
        // the directory: sync it here, the caller commits on our word.
        // (Its bytes were synced before its rename.)
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            sync_parent(path).map(|()| false)
        }
        Err(e) => Err(e.error),
    }
}

/// Moves the complete file `staged` to `target` in the same file system,
/// refusing to replace a file already there (`AlreadyExists`): a name that
/// is published once keeps its bytes. `staged` is left where it was when this
/// fails. The move is durable once this returns.
pub fn publish(staged: &Path, target: &Path) -> std::io::Result<()> {
    let mut staged = tempfile::TempPath::try_from_path(staged)?;
    // The caller owns `staged`: it must survive a refused move.
    staged.disable_cleanup(true);
    staged.persist_noclobber(target).map_err(|e| e.error)?;
    sync_parent(target)
}

fn temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = parent_of(path);
    create_dirs_durably(dir)?;
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
}

/// The directory holding `path` ("." for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs the directory holding `path`: a rename, link or unlink in it is
/// durable only once the directory entry is on disk.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    if path.parent().is_none() {
        return Ok(()); // the root
    }
    std::fs::File::open(parent_of(path))?.sync_all()
}

/// `create_dir_all`, but each directory it creates is synced into its parent:
/// a file synced into a new directory is lost in a crash if the directory's
/// own entry is not on disk.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(at),
            Err(e) => return Err(e),
        }
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            // Lost a race with another writer, which may not have synced
            // it yet: sync it all the same.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        sync_parent(d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write(&p, b"first").unwrap();
        write(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn write_once_keeps_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digest");
        assert!(write_once(&p, b"one").unwrap());
        assert!(!write_once(&p, b"two").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_once_creates_missing_directories_and_names_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/digest");
        assert!(write_once(&p, b"one").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // A crash between write and rename leaves a TEMP_PREFIX file there.
        let tmp = temp_beside(&p).unwrap();
        let name = tmp.path().file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(TEMP_PREFIX), "{name}");
    }

    #[test]
    fn publish_moves_the_file_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let (staged, target) = (dir.path().join("a.staged"), dir.path().join("a"));
        write(&staged, b"first").unwrap();
        publish(&staged, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        assert!(!staged.exists(), "the staged name is gone once published");

        write(&staged, b"second").unwrap();
        let err = publish(&staged, &target).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"first");
        assert_eq!(
            std::fs::read(&staged).unwrap(),
            b"second",
            "a refused file is kept"
        );
    }

    #[test]
    fn publish_of_a_missing_file_fails_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        let err = publish(&dir.path().join("nothing"), &target).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(!target.exists());
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"old").unwrap();
        let err = write_with(&p, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
