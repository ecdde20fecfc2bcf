//! One conformance suite for every blob backend: the folder one and an
//! S3-compatible store (Garage, started by `scripts/services.sh`).

use super::*;
use crate::test_services;

/// A backend under test and whatever must live as long as it.
struct Fixture {
    blobs: Arc<dyn BlobStore>,
    /// Where the test writes the local files it hands to `put_files`.
    scratch: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A complete local file, as the uplink hands one over.
    fn file(&self, name: &str, bytes: &[u8]) -> (PathBuf, String) {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (path, sha256_hex(bytes))
    }
}

async fn folder() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        blobs: Arc::new(FolderBlobs::open(&dir.path().join("blobs")).unwrap()),
        scratch: tempfile::tempdir().unwrap(),
        _dir: dir,
    }
}

/// Each test gets its own prefix in the shared test bucket.
async fn garage() -> Fixture {
    let url = format!(
        "{}/test-{}",
        test_services::setting("IMC_TEST_S3_URL").trim_end_matches('/'),
        uuid::Uuid::new_v4()
    );
    Fixture {
        blobs: Arc::new(ObjectBlobs::s3(&url, test_services::s3_builder()).unwrap()),
        scratch: tempfile::tempdir().unwrap(),
        _dir: tempfile::tempdir().unwrap(),
    }
}

/// One file through the batch call, as a batch of one.
async fn put_file(blobs: &dyn BlobStore, path: &Path, sha256: &str) -> Result<(), BlobError> {
    let mut results = blobs
        .put_files(vec![(path.to_owned(), sha256.to_owned())])
        .await;
    assert_eq!(results.len(), 1, "one result per file");
    results.remove(0)
}

/// Bytes that are not a repetition of one part, so a misplaced part shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

async fn put_get_and_dedupe(f: Fixture) {
    let blobs = &f.blobs;
    let sha = blobs.put(b"page".to_vec()).await.unwrap();
    assert_eq!(sha, sha256_hex(b"page"));
    assert_eq!(blobs.put(b"page".to_vec()).await.unwrap(), sha);
    assert_eq!(blobs.get(&sha).await.unwrap(), b"page");
    assert!(blobs.contains(&sha).await.unwrap());
}

async fn names_are_digests_only(f: Fixture) {
    let blobs = &f.blobs;
    for bad in ["../../etc/passwd", "", &"A".repeat(64), &"0".repeat(63)] {
        assert!(matches!(blobs.get(bad).await, Err(BlobError::BadName(_))));
        assert!(matches!(
            blobs.contains(bad).await,
            Err(BlobError::BadName(_))
        ));
    }
    let (path, _) = f.file("page", b"bytes");
    assert!(matches!(
        put_file(&**blobs, &path, "../x").await,
        Err(BlobError::BadName(_))
    ));
    assert!(path.exists(), "a refused file is left where it was");
}

async fn missing_blobs_are_absent(f: Fixture) {
    let missing = sha256_hex(b"never stored");
    assert!(!f.blobs.contains(&missing).await.unwrap());
    assert!(matches!(
        f.blobs.get(&missing).await,
        Err(BlobError::NotFound(name)) if name == missing
    ));
}

async fn put_file_takes_the_file_over(f: Fixture) {
    let (path, sha) = f.file("one", b"scanned page");
    put_file(&*f.blobs, &path, &sha).await.unwrap();
    assert!(!path.exists());
    assert_eq!(f.blobs.get(&sha).await.unwrap(), b"scanned page");
    // The same bytes uploaded again (another desk, a retry) change nothing.
    let (again, same) = f.file("two", b"scanned page");
    put_file(&*f.blobs, &again, &same).await.unwrap();
    assert!(!again.exists());
    assert_eq!(f.blobs.get(&sha).await.unwrap(), b"scanned page");
}

async fn a_failed_put_file_leaves_nothing(f: Fixture) {
    let path = f.scratch.path().join("vanished");
    let sha = sha256_hex(b"vanished");
    assert!(put_file(&*f.blobs, &path, &sha).await.is_err());
    assert!(!f.blobs.contains(&sha).await.unwrap());
}

/// A batch answers each file on its own, in order: a bad name or a missing
/// file fails alone, the same bytes twice in one batch are stored once.
async fn a_batch_answers_each_file(f: Fixture) {
    let (first, first_sha) = f.file("first", b"page one");
    let (twin, twin_sha) = f.file("twin", b"page one");
    let (refused, _) = f.file("refused", b"page two");
    let vanished = f.scratch.path().join("vanished");
    let vanished_sha = sha256_hex(b"vanished");
    let (last, last_sha) = f.file("last", b"page three");
    let results = f
        .blobs
        .put_files(vec![
            (first.clone(), first_sha.clone()),
            (twin.clone(), twin_sha),
            (refused.clone(), "not-a-digest".into()),
            (vanished, vanished_sha.clone()),
            (last.clone(), last_sha.clone()),
        ])
        .await;
    assert_eq!(results.len(), 5);
    assert!(results[0].is_ok() && results[1].is_ok() && results[4].is_ok());
    assert!(matches!(results[2], Err(BlobError::BadName(_))));
    assert!(results[3].is_err());
    assert!(!first.exists() && !twin.exists() && !last.exists());
    assert!(refused.exists(), "a refused file is left where it was");
    assert_eq!(f.blobs.get(&first_sha).await.unwrap(), b"page one");
    assert_eq!(f.blobs.get(&last_sha).await.unwrap(), b"page three");
    assert!(!f.blobs.contains(&vanished_sha).await.unwrap());
    assert!(f.blobs.put_files(Vec::new()).await.is_empty());
}

/// Larger than one part of the object backend, and not a whole number of parts.
async fn large_pages_arrive_whole(f: Fixture) {
    let bytes = pattern(2 * object::PART_SIZE + 12_345);
    let (path, sha) = f.file("large", &bytes);
    put_file(&*f.blobs, &path, &sha).await.unwrap();
    assert!(f.blobs.get(&sha).await.unwrap() == bytes);
    let other = pattern(object::PART_SIZE + 1)
        .into_iter()
        .rev()
        .collect::<Vec<_>>();
    let other_sha = f.blobs.put(other.clone()).await.unwrap();
    assert_eq!(other_sha, sha256_hex(&other));
    assert!(f.blobs.get(&other_sha).await.unwrap() == other);
    // Stored again: already there, nothing uploaded, still whole.
    assert_eq!(f.blobs.put(other.clone()).await.unwrap(), other_sha);
    assert!(f.blobs.get(&other_sha).await.unwrap() == other);
}

async fn racing_puts_of_the_same_bytes_all_succeed(f: Fixture) {
    let bytes = pattern(300_000);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (blobs, bytes) = (Arc::clone(&f.blobs), bytes.clone());
            tokio::spawn(async move { blobs.put(bytes).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), sha256_hex(&bytes));
    }
    assert!(f.blobs.get(&sha256_hex(&bytes)).await.unwrap() == bytes);
}

async fn delete_removes_and_a_later_put_restores(f: Fixture) {
    let bytes = pattern(70_000);
    let sha = f.blobs.put(bytes.clone()).await.unwrap();
    let other = f.blobs.put(b"another page".to_vec()).await.unwrap();
    f.blobs.delete(&sha).await.unwrap();
    assert!(!f.blobs.contains(&sha).await.unwrap());
    assert!(matches!(
        f.blobs.get(&sha).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(f.blobs.contains(&other).await.unwrap(), "only that blob");
    f.blobs.delete(&sha).await.unwrap();
    assert!(matches!(
        f.blobs.delete("../etc/passwd").await,
        Err(BlobError::BadName(_))
    ));
    // Bytes deleted and then stored again (a new upload) are there again,
    // through either way of storing them.
    assert_eq!(f.blobs.put(bytes.clone()).await.unwrap(), sha);
    assert!(f.blobs.get(&sha).await.unwrap() == bytes);
    f.blobs.delete(&sha).await.unwrap();
    let (path, sha) = f.file("again", &bytes);
    put_file(&*f.blobs, &path, &sha).await.unwrap();
    assert!(f.blobs.get(&sha).await.unwrap() == bytes);
}

macro_rules! conformance {
    ($backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::$backend().await).await
                }
            )+
        }
    };
}

conformance!(folder: put_get_and_dedupe, names_are_digests_only, missing_blobs_are_absent,
    put_file_takes_the_file_over, a_failed_put_file_leaves_nothing, a_batch_answers_each_file,
    large_pages_arrive_whole,
    racing_puts_of_the_same_bytes_all_succeed, delete_removes_and_a_later_put_restores);
conformance!(garage: put_get_and_dedupe, names_are_digests_only, missing_blobs_are_absent,
    put_file_takes_the_file_over, a_failed_put_file_leaves_nothing, a_batch_answers_each_file,
    large_pages_arrive_whole,
    racing_puts_of_the_same_bytes_all_succeed, delete_removes_and_a_later_put_restores);

/// An upload cut off midway (a replica killed) is never visible as a blob.
#[tokio::test]
async fn an_unfinished_multipart_upload_is_invisible() {
    let url = format!(
        "{}/test-{}",
        test_services::setting("IMC_TEST_S3_URL").trim_end_matches('/'),
        uuid::Uuid::new_v4()
    );
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(
        test_services::s3_builder()
            .with_bucket_name(url::Url::parse(&url).unwrap().host_str().unwrap())
            .build()
            .unwrap(),
    );
    let blobs = ObjectBlobs::new(
        Arc::clone(&store),
        url::Url::parse(&url).unwrap().path(),
        url,
    )
    .unwrap();
    let bytes = pattern(2 * object::PART_SIZE);
    let sha = sha256_hex(&bytes);
    let mut upload = store
        .put_multipart_opts(&blobs.key(&sha).unwrap(), Default::default())
        .await
        .unwrap();
    upload
        .put_part(bytes[..object::PART_SIZE].to_vec().into())
        .await
        .unwrap();
    drop(upload);
    assert!(!blobs.contains(&sha).await.unwrap());
    assert!(matches!(blobs.get(&sha).await, Err(BlobError::NotFound(_))));
    // The page can still be stored whole afterwards.
    assert_eq!(blobs.put(bytes.clone()).await.unwrap(), sha);
    assert!(blobs.get(&sha).await.unwrap() == bytes);
}

/// Bytes found already in place may have been renamed in by a server that
/// crashed before it synced their directory: visible, not yet durable. Taking
/// over a file with those bytes syncs that directory all the same.
#[cfg(unix)]
#[tokio::test]
async fn bytes_found_in_place_get_their_directory_synced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let blobs = FolderBlobs::open(&root).unwrap();
    let bytes = pattern(1000);
    let sha = sha256_hex(&bytes);
    let fan_out = root.join(&sha[..2]);
    std::fs::write(fan_out.join(&sha), &bytes).unwrap();
    let partial = dir.path().join("page.part");
    std::fs::write(&partial, &bytes).unwrap();
    let before = super::folder::dir_syncs(&fan_out);
    put_file(&blobs, &partial, &sha).await.unwrap();
    assert!(!partial.exists());
    assert_eq!(super::folder::dir_syncs(&fan_out), before + 1);
}

/// The folder store makes its fan-out directories once, at open, so a commit
/// never creates one (whose entry in the root it would also have to sync).
#[tokio::test]
async fn the_folder_store_makes_its_fan_out_directories_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let blobs = FolderBlobs::open(&root).unwrap();
    let fan_out: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(fan_out.len(), 256);
    let sha = blobs.put(b"page".to_vec()).await.unwrap();
    assert!(root.join(&sha[..2]).join(&sha).is_file());
    // Opening again over existing directories is fine.
    FolderBlobs::open(&root).unwrap();
}
