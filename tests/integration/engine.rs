//! The engine through its library API: concurrent readers across index merges, a damaged
//! commit log, unusable key files.

use std::sync::Arc;

use kubesnap::backend::{Backend, ObjectStoreBackend};
use kubesnap::crypto::KdfParams;
use kubesnap::ops::snapshot::{snapshot_dir, SnapshotOptions};
use kubesnap::ops::NoProgress;
use kubesnap::repo::{OpenOptions, Repository};

use super::common::{synthetic_cluster, write};

const CHEAP: KdfParams = KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };

fn repo_at(dir: &std::path::Path) -> Arc<dyn Backend> {
    Arc::new(ObjectStoreBackend::local(&dir.join("repo")).unwrap())
}

fn open(dir: &std::path::Path) -> Repository {
    Repository::open(repo_at(dir), b"pw", &OpenOptions { no_cache: true, ..Default::default() }).unwrap()
}

fn snap(repo: &mut Repository, src: &std::path::Path) {
    snapshot_dir(repo, &SnapshotOptions { from_dir: src.to_path_buf(), ..Default::default() }, &NoProgress).unwrap();
}

#[test]
fn a_reader_survives_a_concurrent_index_merge() {
    let d = tempfile::tempdir().unwrap();
    Repository::init(repo_at(d.path()), b"pw", CHEAP, |_| {}).unwrap();
    let src = d.path().join("src");
    synthetic_cluster(&src, 0);
    let mut writer = open(d.path());
    snap(&mut writer, &src);
    let change = |i: usize| {
        write(
            &src,
            "extra.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\ndata:\n  i: \"{i}\"\n"
            ),
        );
    };
    for i in 0..3 {
        change(i);
        snap(&mut writer, &src);
    }
    // The reader loads the list of index files now: the small ones will be merged away.
    let reader = open(d.path());
    let last = reader.snapshots().last().unwrap().clone();
    let manifest = reader.load_manifest(&last.id).unwrap();
    let before = reader.index().ids();
    for i in 3..12 {
        change(i);
        snap(&mut writer, &src);
    }
    let gone = before.iter().filter(|id| !d.path().join("repo").join(kubesnap::repo::index_name(id)).exists()).count();
    assert!(gone >= 3, "the merge deleted index files the reader knew ({gone})");
    assert!(writer.state().index.len() <= 9, "index files were merged: {}", writer.state().index.len());
    // The reader still holds the old list of index files; its lookups re-read the log.
    let mut n = 0;
    kubesnap::repo::tree::walk_snapshot(&reader, &manifest.roots, &mut |_, e| {
        kubesnap::ops::read_part(&reader, &e.desired)?;
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 15);
}

#[test]
fn a_gap_in_the_commit_log_stops_writers_not_readers() {
    let d = tempfile::tempdir().unwrap();
    Repository::init(repo_at(d.path()), b"pw", CHEAP, |_| {}).unwrap();
    let src = d.path().join("src");
    synthetic_cluster(&src, 0);
    let mut repo = open(d.path());
    for _ in 0..3 {
        snap(&mut repo, &src);
    }
    std::fs::remove_file(d.path().join("repo/log/00000000000000000002")).unwrap();
    let mut fresh = open(d.path());
    assert_eq!(fresh.snapshots().len(), 1, "readers see the log up to the gap");
    let err = snapshot_dir(&mut fresh, &SnapshotOptions { from_dir: src.clone(), ..Default::default() }, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("00000000000000000002") && err.contains("gap"), "{err}");
}

#[test]
fn unusable_key_files_do_not_block_the_others() {
    let d = tempfile::tempdir().unwrap();
    let backend = repo_at(d.path());
    Repository::init(backend.clone(), b"pw", CHEAP, |_| {}).unwrap();
    // A damaged key file and a key file of another repository with the same password.
    std::fs::write(d.path().join("repo/keys/00"), b"garbage").unwrap();
    let other = tempfile::tempdir().unwrap();
    Repository::init(repo_at(other.path()), b"pw", CHEAP, |_| {}).unwrap();
    for k in std::fs::read_dir(other.path().join("repo/keys")).unwrap() {
        let k = k.unwrap();
        std::fs::copy(k.path(), d.path().join("repo/keys").join(k.file_name())).unwrap();
    }
    let repo = open(d.path());
    assert!(repo.snapshots().is_empty());
    let err = Repository::open(repo_at(d.path()), b"nope", &OpenOptions { no_cache: true, ..Default::default() })
        .err()
        .unwrap();
    assert!(matches!(err, kubesnap::Error::WrongPassword(3)), "{err}");
    // A second password for the same repository.
    repo.add_key(b"second", CHEAP).unwrap();
    Repository::open(repo_at(d.path()), b"second", &OpenOptions { no_cache: true, ..Default::default() }).unwrap();
}

#[test]
fn unchanged_live_objects_are_reused_by_source_tag() {
    use kubesnap::ops::snapshot::{SnapshotMeta, SnapshotWriter};
    use serde_json::json;
    let d = tempfile::tempdir().unwrap();
    Repository::init(repo_at(d.path()), b"pw", CHEAP, |_| {}).unwrap();
    let mut repo = open(d.path());
    let cm = |name: &str, rv: &str, value: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns1", "uid": format!("uid-{name}"), "resourceVersion": rv}, "data": {"k": value}});
    let commit = |repo: &mut Repository, objects: Vec<serde_json::Value>| {
        let mut w = SnapshotWriter::new().with_source_tags("cluster");
        if let Some(p) = repo.snapshots().last() {
            let m = repo.load_manifest(&p.id).unwrap();
            w.reuse_unchanged_from(repo, &m.roots).unwrap();
        }
        for (i, o) in objects.into_iter().enumerate() {
            w.add_value(repo, i as u64, o).unwrap().unwrap();
        }
        let meta = SnapshotMeta { cluster: "c".into(), time: chrono::Utc::now(), ..Default::default() };
        w.commit(repo, meta, &|o| o.to_string()).unwrap()
    };
    let first = commit(&mut repo, vec![cm("a", "1", "one"), cm("b", "1", "one")]);
    // b changed (new resourceVersion); a is served with its old resourceVersion: reused as
    // stored, without its content being read again (an API server never changes an object
    // without a new resourceVersion).
    let second = commit(&mut repo, vec![cm("a", "1", "IGNORED"), cm("b", "2", "two")]);
    assert_eq!((second.added, second.removed, second.modified), (0, 0, 1));
    let d = kubesnap::ops::diff::diff(&repo, &first.id, &second.id, &Default::default()).unwrap();
    assert_eq!(d.modified.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["b"]);
    let m = repo.load_manifest(&second.id).unwrap();
    let mut values = Vec::new();
    kubesnap::repo::tree::walk_snapshot(&repo, &m.roots, &mut |r, e| {
        assert!(e.source_tag.is_some(), "live objects carry a source tag");
        values
            .push((r.name, kubesnap::ops::read_resource(&repo, &e, false)?["data"]["k"].as_str().unwrap().to_owned()));
        Ok(())
    })
    .unwrap();
    assert_eq!(values, vec![("a".to_owned(), "one".to_owned()), ("b".to_owned(), "two".to_owned())]);
    // Counts from reuse agree with a diff: a removed, c added, b's status-only change (a new
    // resourceVersion, same desired state) is no modification.
    let third = commit(&mut repo, vec![cm("b", "3", "two"), cm("c", "1", "new")]);
    assert_eq!((third.added, third.removed, third.modified), (1, 1, 0));
    let d = kubesnap::ops::diff::diff(&repo, &second.id, &third.id, &Default::default()).unwrap();
    assert_eq!((d.added.len(), d.removed.len(), d.modified.len()), (1, 1, 0));
}

#[test]
fn dump_folders_get_no_source_tags() {
    let d = tempfile::tempdir().unwrap();
    Repository::init(repo_at(d.path()), b"pw", CHEAP, |_| {}).unwrap();
    let src = d.path().join("src");
    synthetic_cluster(&src, 0);
    let mut repo = open(d.path());
    snap(&mut repo, &src);
    let m = repo.load_manifest(&repo.snapshots()[0].id).unwrap();
    kubesnap::repo::tree::walk_snapshot(&repo, &m.roots, &mut |_, e| {
        assert!(e.source_tag.is_none());
        Ok(())
    })
    .unwrap();
}
