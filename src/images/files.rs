//! The image store's blocking file work, run on the blocking pool by the
//! async methods in `super`.
//!
//! `put` and the retention sweep may run at once, in different workers on one
//! volume. What keeps a committed verdict's image safe: `put` refreshes the
//! image's mtime and then checks that the name still holds the file it
//! touched; the sweep first moves an old image aside (a rename, atomic) and
//! reads the mtime again from the moved file before deleting it. Either the
//! touch came before the move (the sweep sees it and puts the image back) or
//! the move came before the check (`put` writes the image anew).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::atomic::{self, TEMP_PREFIX};

/// An image moved aside by the sweep: `<TEMP_PREFIX>gone.<sha256>.<random>`.
/// A sweep that crashed leaves one; `clean_temp` puts it back.
const GRAVE_PREFIX: &str = ".tmp.gone.";

/// Stores `bytes` as `path` unless it is there, and marks the image used now
/// (retention counts from the last use). Durable once this returns.
pub(super) fn put(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A second round only when a sweep moved the image aside in between.
    for _ in 0..3 {
        if refresh(path)? || atomic::write_once(path, bytes)? {
            return Ok(());
        }
    }
    Err(io::Error::other(
        "the image keeps being removed while it is stored",
    ))
}

/// Sets the mtime of the image at `path` to now and syncs its directory (the
/// image may have been renamed in by a writer that crashed before syncing).
/// False when there is no image there (any more).
fn refresh(path: &Path) -> io::Result<bool> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.set_modified(SystemTime::now()) {
        Ok(()) => {}
        // Another user's file on a shared volume: setting a time needs
        // ownership. The image is there; it only ages from its first use.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(e),
    }
    let held = file.metadata()?;
    let named = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if (held.dev(), held.ino()) != (named.dev(), named.ino()) {
        return Ok(false);
    }
    atomic::sync_parent(path)?;
    Ok(true)
}

/// `ab/abcd…`: a shard directory holds the images whose sha256 starts so.
pub(super) fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && is_lower_hex(name)
}

pub(super) fn is_image_name(name: &str) -> bool {
    name.len() == 64 && is_lower_hex(name)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The shard directories under `root`, in order; none when `root` is missing.
/// Anything else there (`dead-letters/`, …) is not the image store's.
pub(super) fn shard_dirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in read_dir_if_any(root)? {
        let entry = entry?;
        let is_shard = entry.file_name().to_str().is_some_and(is_shard_name);
        if is_shard && entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn read_dir_if_any(dir: &Path) -> io::Result<Box<dyn Iterator<Item = io::Result<fs::DirEntry>>>> {
    match fs::read_dir(dir) {
        Ok(it) => Ok(Box::new(it)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

/// The mtime of an entry, None when it is gone or not a plain file.
fn file_mtime(entry: &fs::DirEntry) -> io::Result<Option<(SystemTime, u64)>> {
    match entry.metadata() {
        Ok(m) if m.is_file() => Ok(Some((m.modified()?, m.len()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the temporary files under `root` (itself and its shards) last
/// modified before `older_than`: those of writers that crashed. A younger
/// one may be another worker's write in progress and is left alone. An image
/// that a crashed sweep had moved aside is put back, not removed. Returns
/// how many were cleaned.
pub(super) fn clean_temp(root: &Path, older_than: SystemTime) -> io::Result<usize> {
    let mut cleaned = 0;
    // dead-letters/ holds the originals of oversized dead letters, written
    // through the same temp files.
    let dirs = [root.to_path_buf(), root.join("dead-letters")]
        .into_iter()
        .chain(shard_dirs(root)?);
    for dir in dirs {
        for entry in read_dir_if_any(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| n.starts_with(TEMP_PREFIX)) else {
                continue;
            };
            match file_mtime(&entry)? {
                Some((mtime, _)) if mtime < older_than => {}
                _ => continue,
            }
            match grave_sha(name) {
                Some(sha) => restore(&entry.path(), &dir.join(sha))?,
                None => remove_if_there(&entry.path())?,
            }
            cleaned += 1;
        }
    }
    Ok(cleaned)
}

fn grave_sha(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(GRAVE_PREFIX)?;
    rest.get(..64).filter(|s| is_image_name(s))
}

/// The images in `shard` last used before `cutoff`, by name.
pub(super) fn old_images(shard: &Path, cutoff: SystemTime) -> io::Result<Vec<String>> {
    let mut old = Vec::new();
    for entry in read_dir_if_any(shard)? {
        let entry = entry?;
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| is_image_name(n))
            .map(String::from)
        else {
            continue;
        };
        if matches!(file_mtime(&entry)?, Some((mtime, _)) if mtime < cutoff) {
            old.push(name);
        }
    }
    Ok(old)
}

/// What `retire` did with an image.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Retired {
    /// Deleted; it held this many bytes.
    Deleted(u64),
    /// Used again since it was listed: kept.
    InUse,
    /// Not there (another sweep took it).
    Gone,
}

/// Deletes the image `sha` of `shard` if it is still unused since `cutoff`.
pub(super) fn retire(shard: &Path, sha: &str, cutoff: SystemTime) -> io::Result<Retired> {
    let path = shard.join(sha);
    let grave = shard.join(format!(
        "{GRAVE_PREFIX}{sha}.{}",
        uuid::Uuid::new_v4().simple()
    ));
    match fs::rename(&path, &grave) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Retired::Gone),
        Err(e) => return Err(e),
    }
    let moved = match fs::metadata(&grave) {
        Ok(m) => m,
        // Another worker's clean_temp put it back already.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Retired::InUse),
        Err(e) => return Err(e),
    };
    if moved.modified()? >= cutoff {
        restore(&grave, &path)?;
        return Ok(Retired::InUse);
    }
    remove_if_there(&grave)?;
    Ok(Retired::Deleted(moved.len()))
}

/// Moves an image set aside back to its name (unless it was stored anew
/// meanwhile: same name, same bytes), durably.
fn restore(grave: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(grave, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()), // restored by another
        Err(e) => return Err(e),
    }
    remove_if_there(grave)?;
    atomic::sync_parent(path)
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
