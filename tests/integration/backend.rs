//! The backend conformance suite: plain functions over the `Backend` trait, run against every
//! backend and decorator.

use std::sync::Arc;

use bytes::Bytes;
use kubesnap::backend::{Backend, BackendError, CountingBackend, Created, ObjectStoreBackend};
use kubesnap::cache::CachedBackend;

fn put_get_and_create_only(b: &dyn Backend) {
    assert_eq!(b.put_new("data/ab/x1", Bytes::from_static(b"hello world")).unwrap(), Created::New);
    assert_eq!(b.put_new("data/ab/x1", Bytes::from_static(b"other")).unwrap(), Created::AlreadyExists);
    assert_eq!(&b.get("data/ab/x1").unwrap()[..], b"hello world", "a losing create changes nothing");
    assert!(matches!(b.get("data/ab/missing"), Err(BackendError::NotFound(_))));
}

fn ranges_and_tails(b: &dyn Backend) {
    b.put_new("index/r1", Bytes::from_static(b"0123456789")).unwrap();
    assert_eq!(&b.get_range("index/r1", 2..5).unwrap()[..], b"234");
    assert_eq!(&b.get_range("index/r1", 0..10).unwrap()[..], b"0123456789");
    assert!(b.get_range("index/r1", 8..20).is_err(), "a read past the end is an error, not a short read");
    let (tail, size) = b.get_tail("index/r1", 3).unwrap();
    assert!(tail.len() >= 3 && b"0123456789".ends_with(&tail) && size == 10, "at least the tail: {tail:?}");
    let (tail, size) = b.get_tail("index/r1", 100).unwrap();
    assert_eq!((&tail[..], size), (&b"0123456789"[..], 10));
    assert!(matches!(b.get_tail("index/none", 3), Err(BackendError::NotFound(_))));
}

fn listing(b: &dyn Backend) {
    for n in ["log/00000000000000000003", "log/00000000000000000001", "log/00000000000000000002", "logx/not-this"] {
        b.put_new(n, Bytes::from(n.as_bytes().to_vec())).unwrap();
    }
    let all: Vec<String> = b.list("log/", None).unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(all, vec!["log/00000000000000000001", "log/00000000000000000002", "log/00000000000000000003"]);
    let after: Vec<String> =
        b.list("log/", Some("log/00000000000000000001")).unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(after, vec!["log/00000000000000000002", "log/00000000000000000003"]);
    let sizes: Vec<u64> = b.list("log/", None).unwrap().into_iter().map(|o| o.size).collect();
    assert_eq!(sizes, vec![24, 24, 24]);
    assert!(b.list("nothing/", None).unwrap().is_empty());
}

fn deletion(b: &dyn Backend) {
    b.put_new("snapshots/d1", Bytes::from_static(b"x")).unwrap();
    b.delete("snapshots/d1").unwrap();
    assert!(matches!(b.get("snapshots/d1"), Err(BackendError::NotFound(_))));
    b.delete("snapshots/d1").unwrap();
    assert_eq!(
        b.put_new("snapshots/d1", Bytes::from_static(b"y")).unwrap(),
        Created::New,
        "a deleted name can be created again"
    );
    assert_eq!(&b.get("snapshots/d1").unwrap()[..], b"y");
}

fn racing_creates(b: Arc<dyn Backend>) {
    for round in 0..5 {
        let name = format!("log/race{round}");
        let winners: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u8)
                .map(|i| {
                    let b = b.clone();
                    let name = name.clone();
                    s.spawn(move || b.put_new(&name, Bytes::from(vec![i; 64])).unwrap() == Created::New)
                })
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(winners, 1, "exactly one of 8 concurrent creates wins");
    }
}

fn awkward_sizes(b: &dyn Backend) {
    b.put_new("data/zz/empty", Bytes::new()).unwrap();
    assert_eq!(b.get("data/zz/empty").unwrap().len(), 0);
    let big = Bytes::from((0..5_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    b.put_new("data/zz/big", big.clone()).unwrap();
    assert_eq!(b.get("data/zz/big").unwrap(), big);
    assert_eq!(b.get_range("data/zz/big", 4_999_990..5_000_000).unwrap(), big.slice(4_999_990..));
}

fn suite(make: &dyn Fn() -> Arc<dyn Backend>) {
    put_get_and_create_only(make().as_ref());
    ranges_and_tails(make().as_ref());
    listing(make().as_ref());
    deletion(make().as_ref());
    racing_creates(make());
    awkward_sizes(make().as_ref());
}

#[test]
fn memory() {
    suite(&|| Arc::new(ObjectStoreBackend::memory()));
}

#[test]
fn local_folder() {
    let dirs = std::sync::Mutex::new(Vec::new());
    suite(&|| {
        let d = tempfile::tempdir().unwrap();
        let b = Arc::new(ObjectStoreBackend::local(d.path()).unwrap());
        dirs.lock().unwrap().push(d);
        b
    });
}

#[test]
fn cache_decorator() {
    let dirs = std::sync::Mutex::new(Vec::new());
    suite(&|| {
        let d = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&d.path().join("repo")).unwrap());
        let b = Arc::new(CachedBackend::open(inner, &d.path().join("cache"), "repo-id").unwrap());
        dirs.lock().unwrap().push(d);
        b
    });
}

#[test]
fn counting_decorator() {
    suite(&|| Arc::new(CountingBackend::new(Arc::new(ObjectStoreBackend::memory()))));
}

#[test]
fn the_cache_serves_immutable_files_without_the_store() {
    let d = tempfile::tempdir().unwrap();
    let store: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&d.path().join("repo")).unwrap());
    let counting = Arc::new(CountingBackend::new(store));
    let cached = CachedBackend::open(counting.clone(), &d.path().join("cache"), "id").unwrap();
    cached.put_new("index/a", Bytes::from_static(b"abc")).unwrap();
    for _ in 0..3 {
        assert_eq!(&cached.get("index/a").unwrap()[..], b"abc");
    }
    assert_eq!(counting.counts().0, 0, "served from the cache");
    cached.put_new("config", Bytes::from_static(b"c")).unwrap();
    cached.get("config").unwrap();
    assert_eq!(counting.counts().0, 1, "mutable-named files always go to the store");
}

use kubesnap::backend::fault::{Action, Fault, FaultyBackend, Op};
use kubesnap::backend::retry::{RetryBackend, RetryPolicy};

/// Quick retries for tests. Many attempts: the misbehaving store below fails about one call in
/// three, counted across threads, so one caller can meet several faults in a row.
fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 30,
        base: std::time::Duration::from_millis(1),
        max_wait: std::time::Duration::from_millis(5),
        max_elapsed: std::time::Duration::from_secs(10),
    }
}

#[test]
fn fault_decorator_without_faults() {
    suite(&|| Arc::new(FaultyBackend::new(Arc::new(ObjectStoreBackend::memory()))));
}

#[test]
fn retry_decorator() {
    suite(&|| Arc::new(RetryBackend::new(Arc::new(ObjectStoreBackend::memory()), fast())));
}

/// A store that fails, loses answers, drops uploads and cuts reads short, behind the retry
/// decorator: the contract holds.
#[test]
fn retry_decorator_over_a_misbehaving_store() {
    let fired = std::sync::Mutex::new(Vec::new());
    suite(&|| {
        let faulty = Arc::new(FaultyBackend::new(Arc::new(ObjectStoreBackend::memory())));
        faulty.add(Fault::new(Action::Error).every(3));
        faulty.add(Fault::new(Action::ErrorAfter).on(&[Op::PutNew]).every(4));
        faulty.add(Fault::new(Action::DropWrite).on(&[Op::PutNew]).every(5));
        faulty.add(Fault::new(Action::ShortRead).on(&[Op::GetRange]).every(2));
        fired.lock().unwrap().push(faulty.clone());
        Arc::new(RetryBackend::new(faulty, fast()))
    });
    let total: u64 = fired.lock().unwrap().iter().map(|f| f.fired()).sum();
    assert!(total > 20, "faults fired: {total}");
}

/// The S3-compatible server started by scripts/test.sh (KUBESNAP_TEST_S3 is its endpoint).
pub fn s3_options() -> Option<Vec<(String, String)>> {
    let endpoint = std::env::var("KUBESNAP_TEST_S3").ok()?;
    Some(
        [
            ("endpoint", endpoint.as_str()),
            ("allow_http", "true"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
            ("region", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

pub fn s3_url(test: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("s3://kubesnap-test/{test}-{}-{n}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The S3 test server as environment variables, as a user would set them.
pub fn s3_env() -> Option<Vec<(String, String)>> {
    let endpoint = std::env::var("KUBESNAP_TEST_S3").ok()?;
    Some(
        [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

#[test]
fn s3_compatible_server() {
    let Some(opts) = s3_options() else {
        eprintln!("s3_compatible_server: skipped: KUBESNAP_TEST_S3 is not set (scripts/test.sh starts moto)");
        return;
    };
    suite(&|| kubesnap::backend::open_with(&s3_url("conformance"), &opts).expect("open s3"));
}

#[test]
fn locations_and_options_are_checked() {
    for (url, opts, want) in [
        ("ftp://host/x", vec![], "unknown scheme"),
        ("s3:///prefix", vec![], "no bucket"),
        ("s3://bucket/p", vec![("no_such_option".to_string(), "1".to_string())], "unknown S3 option"),
        ("gs://bucket/p", vec![("no_such_option".to_string(), "1".to_string())], "unknown GCS option"),
        ("az://c/p", vec![("no_such_option".to_string(), "1".to_string())], "unknown Azure option"),
        ("/tmp/x", vec![("endpoint".to_string(), "x".to_string())], "--option applies"),
    ] {
        let err = kubesnap::backend::open_with(url, &opts).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(want), "{url}: {err}");
    }
    // A GCS location is understood without a server (credentials are read when first used).
    let gcs =
        kubesnap::backend::open_with("gs://bucket/prefix", &[("service_account_key".to_string(), "{}".to_string())]);
    assert!(gcs.is_ok() || gcs.as_ref().err().is_some_and(|e| !e.to_string().contains("unknown")), "{:?}", gcs.err());
}

mod repository_faults {
    use std::sync::Arc;

    use kubesnap::backend::fault::{Action, Fault, FaultyBackend, Op};
    use kubesnap::backend::retry::RetryBackend;
    use kubesnap::backend::{Backend, ObjectStoreBackend};
    use kubesnap::crypto::KdfParams;
    use kubesnap::ops::snapshot::{snapshot_dir, SnapshotOptions};
    use kubesnap::ops::NoProgress;
    use kubesnap::repo::{OpenOptions, Repository};

    use super::super::common::synthetic_cluster;
    use super::fast;

    const CHEAP: KdfParams = KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };

    fn setup() -> (tempfile::TempDir, Arc<dyn Backend>, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let store: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&d.path().join("repo")).unwrap());
        Repository::init(store.clone(), b"pw", CHEAP, |_| {}).unwrap();
        let src = d.path().join("src");
        synthetic_cluster(&src, 0);
        (d, store, src)
    }

    fn open(b: Arc<dyn Backend>) -> kubesnap::Result<Repository> {
        Repository::open(b, b"pw", &OpenOptions { no_cache: true, ..Default::default() })
    }

    fn restore_all(
        repo: &Repository,
        id: &kubesnap::format::SnapshotId,
        dir: &std::path::Path,
    ) -> kubesnap::Result<Vec<kubesnap::ops::restore::Restored>> {
        let opts = kubesnap::ops::restore::RestoreOptions {
            clean: None,
            resources: Vec::new(),
            filter: Default::default(),
            server_fields: true,
            output: kubesnap::ops::restore::Output::Dir(dir.to_path_buf()),
        };
        kubesnap::ops::restore::restore(repo, id, &opts, &mut std::io::sink())
    }

    fn clean_check(store: Arc<dyn Backend>) -> Repository {
        let repo = open(store).unwrap();
        let opts = kubesnap::ops::check::CheckOptions { read_data: true, read_data_subset: None };
        let r = kubesnap::ops::check::check(&repo, &opts, &NoProgress).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        repo
    }

    #[test]
    fn transient_faults_are_survived() {
        let (_d, store, src) = setup();
        let faulty = Arc::new(FaultyBackend::new(store.clone()));
        faulty.add(Fault::new(Action::Error).every(4));
        faulty.add(Fault::new(Action::ErrorAfter).on(&[Op::PutNew]).every(3));
        faulty.add(Fault::new(Action::DropWrite).on(&[Op::PutNew]).every(7));
        // Ranged reads cut short are detected (the length is known) and retried; a whole-object
        // read cut short cannot be told from a shorter object, and is refused by authentication
        // instead (a_store_that_cuts_reads_short_is_caught_not_believed).
        faulty.add(Fault::new(Action::ShortRead).on(&[Op::GetRange]).every(5));
        let b: Arc<dyn Backend> = Arc::new(RetryBackend::new(faulty.clone(), fast()));
        let mut repo = open(b.clone()).unwrap();
        let r = snapshot_dir(&mut repo, &SnapshotOptions { from_dir: src, ..Default::default() }, &NoProgress).unwrap();
        assert!(faulty.fired() > 5, "{}", faulty.fired());
        let again = open(b).unwrap();
        let out = tempfile::tempdir().unwrap();
        restore_all(&again, &r.id, out.path()).unwrap();
        let repo = clean_check(store);
        assert_eq!(repo.snapshots().len(), 1);
    }

    #[test]
    fn a_permanent_fault_fails_clearly_and_leaves_the_repository_sound() {
        let (_d, store, src) = setup();
        let faulty = Arc::new(FaultyBackend::new(store.clone()));
        faulty.add(Fault::new(Action::Error).on(&[Op::PutNew]).under("data/"));
        let b: Arc<dyn Backend> = Arc::new(RetryBackend::new(faulty, fast()));
        let mut repo = open(b).unwrap();
        let err = snapshot_dir(&mut repo, &SnapshotOptions { from_dir: src, ..Default::default() }, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("injected fault") && err.contains("data/"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        let repo = clean_check(store);
        assert!(repo.snapshots().is_empty());
    }

    #[test]
    fn a_store_that_cuts_reads_short_is_caught_not_believed() {
        let (_d, store, src) = setup();
        let mut repo = open(store.clone()).unwrap();
        let r = snapshot_dir(&mut repo, &SnapshotOptions { from_dir: src, ..Default::default() }, &NoProgress).unwrap();
        // No retry layer: the lie reaches the repository, whose authentication must refuse it.
        let faulty = Arc::new(FaultyBackend::new(store));
        faulty.add(Fault::new(Action::ShortRead).on(&[Op::GetRange]).under("data/"));
        let lying = open(faulty).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = restore_all(&lying, &r.id, out.path()).unwrap_err();
        assert!(matches!(err, kubesnap::Error::Corrupt { .. } | kubesnap::Error::Backend(_)), "{err}");
    }
}

/// Azurite, started by scripts/test.sh where npm installs it (KUBESNAP_TEST_AZURE).
pub fn azure_options() -> Option<Vec<(String, String)>> {
    std::env::var("KUBESNAP_TEST_AZURE").ok()?;
    Some(vec![("use_emulator".to_string(), "true".to_string())])
}

#[test]
fn azure_blob_emulator() {
    let Some(opts) = azure_options() else {
        eprintln!("azure_blob_emulator: skipped: KUBESNAP_TEST_AZURE is not set (scripts/test.sh starts Azurite)");
        return;
    };
    suite(&|| {
        let url = s3_url("conformance").replacen("s3://", "az://", 1);
        kubesnap::backend::open_with(&url, &opts).expect("open azure")
    });
}

/// A real GCS bucket, when one is named: `KUBESNAP_TEST_GCS=gs://BUCKET/PREFIX` with credentials
/// in the environment (`GOOGLE_SERVICE_ACCOUNT`...). No emulator implements what object_store's
/// GCS client needs, so CI cannot run this.
#[test]
fn gcs_bucket_when_named() {
    let Ok(base) = std::env::var("KUBESNAP_TEST_GCS") else {
        eprintln!("gcs_bucket_when_named: skipped: set KUBESNAP_TEST_GCS=gs://BUCKET/PREFIX to run it");
        return;
    };
    suite(&|| {
        let url = format!("{}/conformance-{}", base.trim_end_matches('/'), rand_suffix());
        kubesnap::backend::open_with(&url, &[]).expect("open gcs")
    });
}
