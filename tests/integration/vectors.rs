//! Format test vectors: `format-spec/vectors/*.json` are decoded and their meaning checked, and
//! re-encoding gives the same bytes. A reference repository (`format-spec/vectors/repo-v1`,
//! password in its README) must keep opening and restoring: the format is a contract.
//!
//! `KUBESNAP_WRITE_VECTORS=1 cargo test vectors` rewrites the JSON vectors from the code (then
//! review the diff: a changed vector is a format change).

use std::path::{Path, PathBuf};

use kubesnap::crypto::{self, KdfParams, MasterKey};
use kubesnap::format::config::Config;
use kubesnap::format::index::{BlockRef, IndexBlock, IndexEntry, IndexFooter, IndexFrame};
use kubesnap::format::pack::{self, BlobType, Compression, FrameBlob, FrameHeader, PackHeader, PackKind};
use kubesnap::format::resource::{canonical_json, split};
use kubesnap::format::tree::{Child, Level, Node, NodeBody, PartRef, ResourceEntry, Value as TreeValue};
use kubesnap::format::{aad, wire, BlobId, FileHeader, FileType, FrameId, PackId};
use serde_json::{json, Value};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors")
}

fn master() -> MasterKey {
    MasterKey::from_secret(core::array::from_fn(|i| i as u8))
}

fn bid(b: u8) -> BlobId {
    BlobId([b; 16])
}

/// Every vector: (name, encoded bytes, meaning).
fn vectors() -> Vec<(String, Vec<u8>, Value)> {
    let mut v: Vec<(String, Vec<u8>, Value)> = Vec::new();
    v.push((
        "file header of a pack".into(),
        FileHeader::encode(FileType::Pack).to_vec(),
        json!({"magic": "KSNP", "version": 1, "file_type": 3, "flags": 0}),
    ));
    for n in [0u64, 1, 127, 128, 300, 16384, u64::MAX] {
        let mut out = Vec::new();
        wire::put_varint(&mut out, n);
        v.push((format!("varint {n}"), out, json!(n.to_string())));
    }
    v.push(("pack trailer".into(), pack::encode_trailer(1234).to_vec(), json!({"header_length": 1234})));
    let blobs = vec![
        FrameBlob { id: bid(0xaa), blob_type: BlobType::Desired, raw_offset: 0, raw_length: 100 },
        FrameBlob { id: bid(0xbb), blob_type: BlobType::Server, raw_offset: 100, raw_length: 50 },
    ];
    let fid = pack::frame_id(master().id_key(), &blobs);
    v.push(("frame id of two blobs".into(), fid.0.to_vec(), json!({"blobs": [{"id": "aa".repeat(16), "type": 1, "raw_length": 100}, {"id": "bb".repeat(16), "type": 2, "raw_length": 50}]})));
    let header = PackHeader {
        kind: PackKind::Data,
        frames: vec![FrameHeader {
            offset: 8,
            sealed_length: 120,
            raw_length: 150,
            compression: Compression::Zstd,
            frame_id: fid,
            blobs: blobs.clone(),
        }],
    };
    v.push(("pack header".into(), header.encode(), json!({"kind": "data", "frames": [{"offset": 8, "sealed_length": 120, "raw_length": 150, "compression": "zstd", "blobs": [{"id": "aa".repeat(16), "type": 1, "raw_offset": 0, "raw_length": 100}, {"id": "bb".repeat(16), "type": 2, "raw_offset": 100, "raw_length": 50}]}]})));
    let frame = IndexFrame {
        pack: PackId([0x11; 32]),
        pack_kind: PackKind::Data,
        offset: 8,
        sealed_length: 120,
        raw_length: 150,
        compression: Compression::Zstd,
        frame_id: FrameId([0x22; 32]),
    };
    let block = IndexBlock {
        frames: vec![frame],
        entries: vec![
            IndexEntry { id: bid(0xaa), frame: 0, blob_type: BlobType::Desired, raw_offset: 0, raw_length: 100 },
            IndexEntry { id: bid(0xbb), frame: 0, blob_type: BlobType::Server, raw_offset: 100, raw_length: 50 },
        ],
    };
    v.push((
        "index block".into(),
        block.encode(),
        json!({"frames": 1, "entries": ["aa..aa -> frame 0, Desired, 0+100", "bb..bb -> frame 0, Server, 100+50"]}),
    ));
    let footer = IndexFooter {
        tag: [0x5a; 16],
        blocks: vec![BlockRef { first: bid(0xaa), last: bid(0xbb), offset: 8, sealed_length: 200, entries: 2 }],
    };
    v.push(("index footer".into(), footer.encode(), json!({"tag": "5a".repeat(16), "blocks": [{"first": "aa".repeat(16), "last": "bb".repeat(16), "offset": 8, "sealed_length": 200, "entries": 2}]})));
    let leaf = Node {
        level: Level::Names,
        body: NodeBody::Leaf(vec![
            (
                "web".into(),
                TreeValue::Resource(ResourceEntry {
                    owned: false,
                    source_tag: Some([0x7a; 8]),
                    desired: PartRef { size: 100, blobs: [bid(0xaa)].into_iter().collect() },
                    server: Some(PartRef { size: 50, blobs: [bid(0xbb)].into_iter().collect() }),
                }),
            ),
            (
                "web-7d9f".into(),
                TreeValue::Resource(ResourceEntry {
                    owned: true,
                    source_tag: None,
                    desired: PartRef { size: 70000, blobs: [bid(1), bid(2)].into_iter().collect() },
                    server: None,
                }),
            ),
        ]),
    };
    v.push(("tree leaf at level Names".into(), leaf.encode(), json!({"web": {"owned": false, "source_tag": "7a".repeat(8), "desired": {"size": 100, "blobs": ["aa".repeat(16)]}, "server": {"size": 50, "blobs": ["bb".repeat(16)]}}, "web-7d9f": {"owned": true, "desired": {"size": 70000, "blobs": ["01".repeat(16), "02".repeat(16)]}}})));
    let subtrees = Node {
        level: Level::Namespaces,
        body: NodeBody::Leaf(vec![("shop".into(), TreeValue::Subtree { id: bid(0xcc), resources: 12 })]),
    };
    v.push((
        "tree leaf at level Namespaces".into(),
        subtrees.encode(),
        json!({"shop": {"subtree": "cc".repeat(16), "resources": 12}}),
    ));
    let internal = Node {
        level: Level::Names,
        body: NodeBody::Internal(vec![
            Child { first_key: "a".into(), id: bid(0xdd), resources: 20 },
            Child { first_key: "m".into(), id: bid(0xee), resources: 15 },
        ]),
    };
    v.push(("tree internal node at level Names".into(), internal.encode(), json!([{"first_key": "a", "child": "dd".repeat(16), "resources": 20}, {"first_key": "m", "child": "ee".repeat(16), "resources": 15}])));

    // Keys and crypto, from the master secret 00 01 02 ... 1f.
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8);
    v.push(("master secret".into(), secret.to_vec(), json!("bytes 0x00..0x1f")));
    for ctx in [
        "kubesnap 2026-11 v1 blob id",
        "kubesnap 2026-11 v1 seal",
        "kubesnap 2026-11 v1 chunker seed",
        "kubesnap 2026-11 v1 tree boundary",
    ] {
        v.push((format!("derive_key({ctx:?}, master secret)"), blake3::derive_key(ctx, &secret).to_vec(), json!(ctx)));
    }
    v.push((
        "chunker seed (u64 little-endian of the first 8 bytes)".into(),
        master().chunker_seed().to_le_bytes().to_vec(),
        json!(master().chunker_seed().to_string()),
    ));
    v.push((
        "source tag (variant \"cluster\", apps/Deployment/shop/web, uid u-1, resourceVersion 42)".into(),
        master().source_tag("cluster", ["apps", "Deployment", "shop", "web"], "u-1", "42").to_vec(),
        json!("first 8 bytes of keyed BLAKE3 (blob id key) over \"kubesnap source tag v1\" 00 and the six strings, each followed by 00"),
    ));
    v.push((
        "blob id of \"hello\"".into(),
        master().blob_id(b"hello").0.to_vec(),
        json!("first 16 bytes of keyed BLAKE3 with the blob id key"),
    ));
    v.push((
        "tree boundary hash of key \"web\" at level Names, height 0".into(),
        master().tree_hash((Level::Names as u8) << 4, b"web").to_le_bytes().to_vec(),
        json!(master().tree_hash((Level::Names as u8) << 4, b"web").to_string()),
    ));
    let seal_root = blake3::derive_key("kubesnap 2026-11 v1 seal", &secret);
    let ad = aad(FileType::Snapshot, b"", b"");
    v.push(("AAD of a snapshot manifest".into(), ad.clone(), json!("KSNP || 01 || 05 || 00")));
    let sealed = crypto::seal_with_salt(&seal_root, &[7u8; 24], &ad, b"{\"hello\":\"world\"}");
    v.push((
        "sealed {\"hello\":\"world\"} with salt 07*24 and the snapshot AAD".into(),
        sealed,
        json!("{\"hello\":\"world\"}"),
    ));
    let params = KdfParams { m_cost: 8, t_cost: 1, p_cost: 1 };
    let kek = crypto::password_key(b"password", &[2u8; 32], params).expect("argon2");
    v.push((
        "Argon2id(\"password\", salt 02*32, m=8 KiB, t=1, p=1) key-wrapping key".into(),
        kek.to_vec(),
        json!({"m_cost": 8, "t_cost": 1, "p_cost": 1}),
    ));
    let wrapped = crypto::seal_with_salt(&kek, &[9u8; 24], crypto::KEY_WRAP_AAD, &secret);
    v.push((
        "master secret wrapped by that key, salt 09*24, AAD \"kubesnap key v1\"".into(),
        wrapped,
        json!("bytes 0x00..0x1f"),
    ));

    // Objects as stored.
    let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"namespace": "shop", "name": "web", "uid": "u-1", "resourceVersion": "42"}, "data": {"b": "2", "a": "1"}, "status": {"x": true}});
    let parts = split(obj.clone());
    v.push(("desired state of a ConfigMap (canonical JSON)".into(), canonical_json(&parts.desired), obj.clone()));
    v.push((
        "server-owned fields of that ConfigMap (canonical JSON)".into(),
        canonical_json(&parts.server.unwrap_or(Value::Null)),
        obj,
    ));
    let cfg = Config::new(kubesnap::format::RepoId([0x33; 32]), "2026-01-01T00:00:00Z".into());
    v.push(("config (before sealing)".into(), cfg.encode(), serde_json::to_value(&cfg).unwrap()));
    v
}

fn to_json(v: &[(String, Vec<u8>, Value)]) -> Value {
    Value::Array(v.iter().map(|(n, b, d)| json!({"name": n, "hex": hex::encode(b), "decoded": d})).collect())
}

#[test]
fn vectors_match_the_code() {
    let path = dir().join("vectors.json");
    let current = to_json(&vectors());
    if std::env::var_os("KUBESNAP_WRITE_VECTORS").is_some() || !path.exists() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&current).unwrap() + "\n").unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (s, c) in stored.as_array().unwrap().iter().zip(current.as_array().unwrap()) {
        assert_eq!(
            s, c,
            "vector {} changed: that is a format change (KUBESNAP_WRITE_VECTORS=1 rewrites the file)",
            s["name"]
        );
    }
    assert_eq!(stored.as_array().unwrap().len(), current.as_array().unwrap().len());
}

#[test]
fn vectors_decode_to_their_meaning() {
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("vectors.json")).unwrap()).unwrap();
    let get = |name: &str| -> Vec<u8> {
        let v =
            stored.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no vector {name}"));
        hex::decode(v["hex"].as_str().unwrap()).unwrap()
    };
    assert_eq!(FileHeader::decode(&get("file header of a pack"), FileType::Pack).unwrap(), &[] as &[u8]);
    for n in [0u64, 1, 127, 128, 300, 16384, u64::MAX] {
        let b = get(&format!("varint {n}"));
        let mut r = wire::Reader::new(&b, "vector");
        assert_eq!(r.varint().unwrap(), n);
        r.finish().unwrap();
    }
    assert_eq!(pack::decode_trailer(&get("pack trailer")).unwrap(), 1234);
    let h = PackHeader::decode(&get("pack header")).unwrap();
    assert_eq!((h.kind, h.frames.len(), h.frames[0].blobs[1].raw_offset), (PackKind::Data, 1, 100));
    let b = IndexBlock::decode(&get("index block")).unwrap();
    assert_eq!(b.find(&bid(0xbb)).unwrap().raw_length, 50);
    assert_eq!(IndexFooter::decode(&get("index footer")).unwrap().block_for(&bid(0xab)), Some(0));
    let leaf = Node::decode(&get("tree leaf at level Names")).unwrap();
    let NodeBody::Leaf(e) = &leaf.body else { panic!("leaf") };
    assert_eq!(e[1].0, "web-7d9f");
    assert!(matches!(&e[1].1, TreeValue::Resource(r) if r.owned && r.desired.blobs.len() == 2 && r.server.is_none()));
    let m = master();
    let seal = get("sealed {\"hello\":\"world\"} with salt 07*24 and the snapshot AAD");
    assert_eq!(m.open(&aad(FileType::Snapshot, b"", b""), &seal).unwrap(), b"{\"hello\":\"world\"}");
    let kek: [u8; 32] =
        get("Argon2id(\"password\", salt 02*32, m=8 KiB, t=1, p=1) key-wrapping key").try_into().unwrap();
    let unwrapped =
        crypto::unwrap_master(&kek, &get("master secret wrapped by that key, salt 09*24, AAD \"kubesnap key v1\""))
            .unwrap();
    assert_eq!(unwrapped.secret(), m.secret());
    assert_eq!(get("desired state of a ConfigMap (canonical JSON)"), br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"shop"},"data":{"a":"1","b":"2"}}"#);
    assert_eq!(
        get("server-owned fields of that ConfigMap (canonical JSON)"),
        br#"{"metadata":{"resourceVersion":"42","uid":"u-1"},"status":{"x":true}}"#
    );
    let (cfg, _) = Config::decode(&get("config (before sealing)")).unwrap();
    assert_eq!(cfg.chunking.threshold, 64 * 1024);
}

/// A frozen repository written by this version: every later version must read it.
#[test]
fn the_reference_repository_still_opens_and_restores() {
    let repo = dir().join("repo-v1");
    let expected = dir().join("repo-v1.expected.yaml");
    let password = "kubesnap test vector";
    let run = |args: &[&str]| {
        let cache = tempfile::tempdir().unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_kubesnap"))
            .env("KUBESNAP_REPOSITORY", &repo)
            .env("KUBESNAP_PASSWORD", password)
            .env("KUBESNAP_CACHE_DIR", cache.path())
            .env_remove("KUBESNAP_PASSWORD_FILE")
            .args(args)
            .output()
            .unwrap()
    };
    if !repo.join("config").exists() {
        let src = tempfile::tempdir().unwrap();
        super::common::synthetic_cluster(src.path(), 0);
        assert!(run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).status.success());
        let out = run(&[
            "snapshot",
            "--from-dir",
            src.path().to_str().unwrap(),
            "--time",
            "2026-01-01T00:00:00Z",
            "--cluster",
            "reference",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = run(&["restore", "latest", "--stdout", "--server-fields"]).stdout;
        std::fs::write(&expected, text).unwrap();
    }
    let out = run(&["restore", "latest", "--stdout", "--server-fields"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(&expected).unwrap());
    let check = run(&["check", "--read-data", "--json"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}
