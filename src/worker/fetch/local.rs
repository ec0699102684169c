//! Local image files (`worker.allow_local_paths`): only regular files that
//! resolve inside `worker.local_paths_dir`, read within `image.max_bytes`,
//! on Tokio's blocking pool.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::error::FetchError;

#[derive(Debug, Clone)]
pub struct LocalFiles {
    /// `None` when no base directory is set: every path is refused.
    base: Option<PathBuf>,
    max_bytes: u64,
}

impl LocalFiles {
    pub fn new(base: &str, max_bytes: u64) -> LocalFiles {
        let base = (!base.trim().is_empty()).then(|| PathBuf::from(base));
        LocalFiles { base, max_bytes }
    }

    pub async fn read(&self, requested: &str) -> Result<Vec<u8>, FetchError> {
        let Some(base) = self.base.clone() else {
            return Err(FetchError::FileRefused(
                "no base directory (worker.local_paths_dir) is set",
            ));
        };
        let requested = PathBuf::from(requested);
        let max_bytes = self.max_bytes;
        tokio::task::spawn_blocking(move || read_within(&base, &requested, max_bytes))
            .await
            .map_err(|_| FetchError::File("reading the file panicked".into()))?
    }
}

fn io_error(e: std::io::Error) -> FetchError {
    // The OS error only (io errors from std name no path), so the
    // directory layout stays out of the reason.
    FetchError::File(e.to_string())
}

/// Reads `requested` (relative to `base`, or absolute under it): refused
/// unless it resolves, symlinks followed, to a regular file inside `base`.
pub fn read_within(base: &Path, requested: &Path, max_bytes: u64) -> Result<Vec<u8>, FetchError> {
    let path = resolve_within(base, requested)?;
    // Checked before opening: opening a FIFO would block until a writer
    // came, and a device may never end.
    let before = std::fs::metadata(&path).map_err(io_error)?;
    if !before.is_file() {
        return Err(FetchError::FileRefused("not a regular file"));
    }
    if before.len() > max_bytes {
        return Err(FetchError::TooLarge { limit: max_bytes });
    }
    // Non-blocking and not through a symlink: a FIFO swapped in after the
    // check cannot block the open, nor a symlink lead outside `base`.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io_error)?;
    // The file opened must be the one checked (not swapped in between).
    let opened = file.metadata().map_err(io_error)?;
    if !opened.is_file() || !same_file(&before, &opened) {
        return Err(FetchError::FileRefused("the file changed while opened"));
    }
    read_exactly(file, before.len(), max_bytes)
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// The canonical form of `requested`, refused when it lies outside `base`:
/// `..` components are refused outright, and a symlink that leads out of
/// `base` is caught once resolved.
fn resolve_within(base: &Path, requested: &Path) -> Result<PathBuf, FetchError> {
    const OUTSIDE: FetchError = FetchError::FileRefused("outside worker.local_paths_dir");
    if requested
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(OUTSIDE);
    }
    let root = base.canonicalize().map_err(|_| {
        FetchError::File("the base directory (worker.local_paths_dir) is unreadable".into())
    })?;
    let relative = if requested.is_absolute() {
        // An absolute path must name the base directory as configured or
        // as resolved.
        requested
            .strip_prefix(base)
            .or_else(|_| requested.strip_prefix(&root))
            .map_err(|_| OUTSIDE)?
    } else {
        requested
    };
    let path = root.join(relative).canonicalize().map_err(io_error)?;
    if !path.starts_with(&root) {
        return Err(OUTSIDE);
    }
    Ok(path)
}

/// Reads at most `max_bytes + 1` bytes and refuses anything but exactly the
/// `expected` length checked before: a file that grew (or shrank) while
/// read is refused rather than analysed half-written or read without end.
pub fn read_exactly(
    reader: impl Read,
    expected: u64,
    max_bytes: u64,
) -> Result<Vec<u8>, FetchError> {
    let limit = max_bytes.saturating_add(1);
    let mut bytes = Vec::with_capacity(expected.min(max_bytes) as usize);
    reader
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    let read = bytes.len() as u64;
    if read > max_bytes {
        return Err(FetchError::TooLarge { limit: max_bytes });
    }
    if read != expected {
        return Err(FetchError::FileRefused("the file changed size while read"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 64;

    struct Dirs {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        outside: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("images");
        let outside = tmp.path().join("secrets");
        std::fs::create_dir_all(base.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(base.join("sub/face.png"), b"face").unwrap();
        std::fs::write(outside.join("key"), b"secret").unwrap();
        Dirs {
            _tmp: tmp,
            base,
            outside,
        }
    }

    fn read(d: &Dirs, requested: impl AsRef<Path>) -> Result<Vec<u8>, FetchError> {
        read_within(&d.base, requested.as_ref(), MAX)
    }

    #[test]
    fn a_regular_file_inside_the_base_is_read() {
        let d = dirs();
        assert_eq!(read(&d, "sub/face.png").unwrap(), b"face");
        assert_eq!(read(&d, d.base.join("sub/face.png")).unwrap(), b"face");
        assert_eq!(read(&d, "sub/./face.png").unwrap(), b"face");
    }

    #[test]
    fn paths_leading_out_of_the_base_are_refused() {
        let d = dirs();
        let outside = FetchError::FileRefused("outside worker.local_paths_dir");
        assert_eq!(read(&d, "../secrets/key"), Err(outside.clone()));
        assert_eq!(read(&d, "sub/../../secrets/key"), Err(outside.clone()));
        assert_eq!(
            read(&d, "sub/../face.png"),
            Err(outside.clone()),
            "no `..` at all"
        );
        assert_eq!(read(&d, d.outside.join("key")), Err(outside.clone()));
        assert_eq!(read(&d, "/etc/passwd"), Err(outside.clone()));
        std::os::unix::fs::symlink(d.outside.join("key"), d.base.join("link")).unwrap();
        assert_eq!(read(&d, "link"), Err(outside.clone()), "symlink escape");
        std::os::unix::fs::symlink(&d.outside, d.base.join("dirlink")).unwrap();
        assert_eq!(read(&d, "dirlink/key"), Err(outside.clone()));
        std::os::unix::fs::symlink("/dev/zero", d.base.join("zero")).unwrap();
        assert_eq!(read(&d, "zero"), Err(outside));
    }

    #[test]
    fn a_symlink_within_the_base_is_followed() {
        let d = dirs();
        std::os::unix::fs::symlink(d.base.join("sub/face.png"), d.base.join("alias.png")).unwrap();
        assert_eq!(read(&d, "alias.png").unwrap(), b"face");
    }

    #[test]
    fn anything_but_a_regular_file_is_refused_without_blocking() {
        let d = dirs();
        let fifo = d.base.join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening the FIFO would block this test for good: it must not be opened.
        assert_eq!(
            read(&d, "pipe"),
            Err(FetchError::FileRefused("not a regular file"))
        );
        assert_eq!(
            read(&d, "sub"),
            Err(FetchError::FileRefused("not a regular file"))
        );
        assert!(matches!(read(&d, "missing.png"), Err(FetchError::File(_))));
    }

    #[test]
    fn a_file_over_the_limit_is_too_large() {
        let d = dirs();
        std::fs::write(d.base.join("big"), vec![0u8; MAX as usize + 1]).unwrap();
        assert_eq!(read(&d, "big"), Err(FetchError::TooLarge { limit: MAX }));
        std::fs::write(d.base.join("full"), vec![0u8; MAX as usize]).unwrap();
        assert_eq!(read(&d, "full").unwrap().len(), MAX as usize);
    }

    #[test]
    fn a_file_that_changes_size_while_read_is_refused() {
        // What the reader sees of a file checked at 4 bytes that has grown.
        assert_eq!(
            read_exactly(&b"grown"[..], 4, MAX),
            Err(FetchError::FileRefused("the file changed size while read"))
        );
        assert_eq!(
            read_exactly(&b"cut"[..], 4, MAX),
            Err(FetchError::FileRefused("the file changed size while read"))
        );
        // One that grows without end is cut off at the limit.
        assert_eq!(
            read_exactly(std::io::repeat(7), 4, MAX),
            Err(FetchError::TooLarge { limit: MAX })
        );
        assert_eq!(read_exactly(&b"same"[..], 4, MAX).unwrap(), b"same");
    }

    #[tokio::test]
    async fn without_a_base_directory_every_path_is_refused() {
        let d = dirs();
        let files = LocalFiles::new("", MAX);
        let path = d.base.join("sub/face.png");
        assert!(matches!(
            files.read(&path.to_string_lossy()).await,
            Err(FetchError::FileRefused(_))
        ));
        let files = LocalFiles::new(&d.base.to_string_lossy(), MAX);
        assert_eq!(files.read("sub/face.png").await.unwrap(), b"face");
    }
}
