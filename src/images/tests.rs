use std::time::{Duration, SystemTime};

use super::*;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn stores_once_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path());
    let sha = "ab".repeat(32);
    store.put(&sha, b"first".to_vec().into()).await.unwrap();
    store.put(&sha, b"second".to_vec().into()).await.unwrap();
    assert_eq!(store.get(&sha).unwrap(), b"first");
    assert!(store.path_of(&sha).starts_with(dir.path().join("ab")));
    assert!(store.get(&"cd".repeat(32)).is_err());
    assert_eq!(
        names(&dir.path().join("ab")),
        [sha],
        "no temporary file left"
    );
}

#[tokio::test]
async fn a_repeated_put_marks_the_image_used_now() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path().join("images"));
    let sha = "ab".repeat(32);
    store.put(&sha, b"image".to_vec().into()).await.unwrap();
    let path = store.path_of(&sha);
    let long_ago = SystemTime::now() - 40 * DAY;
    set_mtime(&path, long_ago);

    let before = SystemTime::now() - Duration::from_secs(1);
    store.put(&sha, b"image".to_vec().into()).await.unwrap();
    assert!(
        mtime(&path) >= before,
        "mtime still {:?} ago",
        SystemTime::now().duration_since(mtime(&path)).unwrap()
    );
    assert_eq!(store.get(&sha).unwrap(), b"image");
}

#[tokio::test]
async fn clean_temp_removes_old_temporary_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path());
    let (a, b) = ("ab".repeat(32), "cd".repeat(32));
    store.put(&a, b"a".to_vec().into()).await.unwrap();
    store.put(&b, b"b".to_vec().into()).await.unwrap();
    let long_ago = SystemTime::now() - 2 * DAY;
    set_mtime(&store.path_of(&a), long_ago); // an old image is not a temp file
    let shard = dir.path().join("ab");
    let crashed = shard.join(".tmp.crashed");
    let live = shard.join(".tmp.writing");
    let crashed_root = dir.path().join(".tmp.root");
    for p in [&crashed, &live, &crashed_root] {
        std::fs::write(p, b"half an image").unwrap();
    }
    let just_too_old = SystemTime::now() - TEMP_MAX_AGE - Duration::from_secs(5);
    set_mtime(&crashed, just_too_old);
    set_mtime(&crashed_root, long_ago);
    // The kept originals of oversized dead letters use the same temp files.
    let letters = dir.path().join("dead-letters");
    std::fs::create_dir(&letters).unwrap();
    std::fs::write(letters.join(".tmp.x"), b"x").unwrap();
    set_mtime(&letters.join(".tmp.x"), long_ago);
    std::fs::write(letters.join("kept"), b"x").unwrap();
    set_mtime(&letters.join("kept"), long_ago);

    assert_eq!(store.clean_temp().await.unwrap(), 3);
    assert_eq!(names(&shard), [".tmp.writing".to_string(), a.clone()]);
    assert_eq!(names(dir.path()), ["ab", "cd", "dead-letters"]);
    assert_eq!(
        names(&letters),
        ["kept"],
        "a kept original is not a temp file"
    );
    assert_eq!(store.get(&a).unwrap(), b"a");
    assert_eq!(store.get(&b).unwrap(), b"b");
    assert_eq!(
        mtime(&store.path_of(&a)),
        long_ago,
        "images are not touched"
    );
}

#[tokio::test]
async fn clean_temp_puts_back_an_image_a_crashed_sweep_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path());
    let sha = "ab".repeat(32);
    store.put(&sha, b"image".to_vec().into()).await.unwrap();
    let grave = dir.path().join("ab").join(format!(".tmp.gone.{sha}.0123"));
    std::fs::rename(store.path_of(&sha), &grave).unwrap();
    set_mtime(&grave, SystemTime::now() - DAY);

    assert_eq!(store.clean_temp().await.unwrap(), 1);
    assert_eq!(store.get(&sha).unwrap(), b"image");
    assert_eq!(names(&dir.path().join("ab")), [sha]);
}

#[tokio::test]
async fn an_image_used_after_it_was_listed_is_not_retired() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::new(dir.path());
    let (used, unused) = ("ab".repeat(32), format!("ab{}", "0".repeat(62)));
    for sha in [&used, &unused] {
        store
            .put(sha, sha.as_bytes().to_vec().into())
            .await
            .unwrap();
        set_mtime(&store.path_of(sha), SystemTime::now() - 40 * DAY);
    }
    let shard = dir.path().join("ab");
    std::fs::write(shard.join(".tmp.x"), b"x").unwrap();
    let cutoff = retention::cutoff(30, SystemTime::now()).unwrap();
    let mut old = files::old_images(&shard, cutoff).unwrap();
    old.sort();
    assert_eq!(old, [unused.clone(), used.clone()]);

    // Between the listing and the delete, a request brings the image again.
    store
        .put(&used, used.as_bytes().to_vec().into())
        .await
        .unwrap();
    assert_eq!(
        files::retire(&shard, &used, cutoff).unwrap(),
        files::Retired::InUse
    );
    assert_eq!(
        files::retire(&shard, &unused, cutoff).unwrap(),
        files::Retired::Deleted(64)
    );
    assert_eq!(
        files::retire(&shard, &unused, cutoff).unwrap(),
        files::Retired::Gone
    );
    assert_eq!(names(&shard), [".tmp.x".to_string(), used.clone()]);
    assert_eq!(store.get(&used).unwrap(), used.as_bytes());
}

#[test]
fn retention_zero_keeps_everything() {
    let now = SystemTime::now();
    assert_eq!(retention::cutoff(0, now), None);
    assert_eq!(retention::cutoff(1, now), Some(now - DAY));
}
