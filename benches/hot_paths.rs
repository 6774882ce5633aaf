//! criterion benches of the hot paths: canonicalising and splitting an object, chunking,
//! hashing, compressing and sealing a frame, the packer, index lookups at 1M and 10M entries,
//! and the tree diff of two 100k-object snapshots that differ in 10 objects.
//!
//!     cargo bench --bench hot_paths
//!     cargo bench --bench hot_paths -- index     # one group

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kubesnap::backend::ObjectStoreBackend;
use kubesnap::crypto::{KdfParams, MasterKey};
use kubesnap::format::config::Config;
use kubesnap::format::index::{BlockRef, IndexBlock, IndexEntry, IndexFooter, IndexFrame, BLOCK_ENTRIES};
use kubesnap::format::pack::{BlobType, Compression, PackKind};
use kubesnap::format::resource::{canonical_json, split};
use kubesnap::format::{BlobId, FrameId, PackId, RepoId};
use kubesnap::ops::snapshot::{SnapshotMeta, SnapshotWriter};
use kubesnap::repo::{OpenOptions, Repository};
use serde_json::{json, Value};

fn deployment(i: usize, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("web-{i}"), "namespace": format!("team-{}", i / 1000), "uid": format!("{i:08x}-5b1c-4c1e-9a7f-0242ac120002"),
            "resourceVersion": (100_000 + i).to_string(), "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "frontend"}, "annotations": {"deployment.kubernetes.io/revision": "3"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}}]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image,
                "ports": [{"containerPort": 8080, "name": "http"}], "env": [{"name": "MODE", "value": "production"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}]}}},
        "status": {"replicas": 3, "readyReplicas": 3, "observedGeneration": 3}})
}

fn object_bench(c: &mut Criterion) {
    let obj = deployment(7, "nginx:1.27");
    let size = canonical_json(&obj).len() as u64;
    let mut g = c.benchmark_group("object");
    g.throughput(Throughput::Bytes(size));
    g.bench_function("canonicalise and split a Deployment", |b| {
        b.iter_batched(
            || obj.clone(),
            |o| {
                let s = split(o);
                (canonical_json(&s.desired), s.server.map(|v| canonical_json(&v)))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let key = MasterKey::from_secret([3; 32]);
    let mut g = c.benchmark_group("hash");
    for size in [1024usize, 64 * 1024] {
        let data = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("keyed BLAKE3 blob id, {size} bytes"), |b| b.iter(|| key.blob_id(black_box(&data))));
    }
    g.finish();

    // A big CRD-like text, as chunked above the threshold.
    let mut big = String::new();
    for i in 0..20_000 {
        big.push_str(&format!(
            "      field{i}:\n        description: The {i}th field of a large schema.\n        type: string\n"
        ));
    }
    let params = Config::new(RepoId([0; 32]), String::new()).chunking;
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function(format!("seeded fastcdc over {} KiB", big.len() / 1024), |b| {
        b.iter(|| kubesnap::chunker::chunk_ranges(black_box(big.as_bytes()), &params, 42))
    });
    g.finish();

    // One frame: 512 KiB of similar objects, compressed (zstd 15) and sealed.
    let mut frame = Vec::new();
    let mut i = 0;
    while frame.len() < 512 * 1024 {
        frame.extend_from_slice(&canonical_json(&split(deployment(i, &format!("nginx:1.{}", i % 30))).desired));
        i += 1;
    }
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.sample_size(20);
    g.bench_function("compress (zstd 15) and seal 512 KiB", |b| {
        b.iter(|| {
            let z = zstd::bulk::compress(black_box(&frame), 15).unwrap_or_default();
            key.seal(b"aad", &z)
        })
    });
    g.finish();
}

/// `cargo bench` passes --bench; under `cargo test --all-targets` each bench runs once as a
/// smoke test, with small inputs.
fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn index_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("index");
    let sizes: &[usize] = if benching() { &[1_000_000, 10_000_000] } else { &[10_000] };
    for &n in sizes {
        // A sorted table of n ids cut into blocks, as one index file holds it.
        let step = u128::MAX / (n as u128 + 1);
        let frame = IndexFrame {
            pack: PackId([1; 32]),
            pack_kind: PackKind::Data,
            offset: 8,
            sealed_length: 100,
            raw_length: 1 << 20,
            compression: Compression::Zstd,
            frame_id: FrameId([2; 32]),
        };
        let mut blocks = Vec::with_capacity(n / BLOCK_ENTRIES + 1);
        let mut footer = IndexFooter::default();
        let mut k = 0usize;
        while k < n {
            let end = (k + BLOCK_ENTRIES).min(n);
            let entries: Vec<IndexEntry> = (k..end)
                .map(|j| IndexEntry {
                    id: BlobId((step * (j as u128 + 1)).to_be_bytes()),
                    frame: 0,
                    blob_type: BlobType::Desired,
                    raw_offset: 0,
                    raw_length: 100,
                })
                .collect();
            footer.blocks.push(BlockRef {
                first: entries[0].id,
                last: entries[entries.len() - 1].id,
                offset: 0,
                sealed_length: 0,
                entries: entries.len() as u32,
            });
            blocks.push(IndexBlock { frames: vec![frame.clone()], entries });
            k = end;
        }
        let mut probe = 0u64;
        g.bench_function(format!("lookup among {n} entries"), |b| {
            b.iter(|| {
                probe = probe.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (probe % n as u64) as u128 + 1;
                let id = BlobId((step * j).to_be_bytes());
                let block = footer.block_for(&id).expect("in range");
                black_box(blocks[block].find(&id))
            })
        });
    }
    g.finish();
}

fn engine_bench(c: &mut Criterion) {
    let cheap = KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };
    let backend = Arc::new(ObjectStoreBackend::memory());
    Repository::init(backend.clone(), b"pw", cheap, |_| {}).expect("init");
    let no_cache = OpenOptions { no_cache: true, ..Default::default() };
    let mut repo = Repository::open(backend.clone(), b"pw", &no_cache).expect("open");

    let blobs: Vec<Vec<u8>> =
        (0..10_000).map(|i| canonical_json(&split(deployment(i, "nginx:1.27")).desired)).collect();
    let total: usize = blobs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("packer");
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(10);
    g.bench_function("pack 10k objects (frames, zstd 15, seal, write)", |b| {
        b.iter_batched(
            || blobs.clone(),
            |blobs| {
                let mut p = kubesnap::repo::packer::Packer::new(PackKind::Data);
                for (i, data) in blobs.into_iter().enumerate() {
                    let id = repo.key().blob_id(&data);
                    p.add(&repo, id, BlobType::Desired, data, (i as u64).to_be_bytes().to_vec()).expect("add");
                }
                p.flush(&repo).expect("flush");
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // Two 100k-object snapshots differing in 10 objects.
    let n = if benching() { 100_000 } else { 2_000 };
    let snap = |repo: &mut Repository, changed: &[usize]| {
        let mut w = SnapshotWriter::new();
        for i in 0..n {
            let image = if changed.contains(&i) { "nginx:1.28" } else { "nginx:1.27" };
            w.add_value(repo, i as u64, deployment(i, image)).expect("store").expect("valid");
        }
        let meta = SnapshotMeta { cluster: "bench".into(), time: chrono::Utc::now(), ..Default::default() };
        w.commit(repo, meta, &|o| o.to_string()).expect("commit").id
    };
    let a = snap(&mut repo, &[]);
    // Ten objects spread over the snapshot.
    let changed: Vec<usize> = (0..10).map(|k| k * n / 10 + 3).collect();
    let b = snap(&mut repo, &changed);
    let ma = repo.load_manifest(&a).expect("manifest");
    let mb = repo.load_manifest(&b).expect("manifest");
    let mut g = c.benchmark_group("tree");
    g.bench_function("diff two 100k-object snapshots differing in 10", |bench| {
        bench.iter(|| {
            let changes =
                kubesnap::repo::tree::diff_snapshots(&repo, &ma.roots, &mb.roots, &kubesnap::repo::tree::same_desired)
                    .expect("diff");
            assert_eq!(changes.len(), 10);
            changes
        })
    });
    g.finish();
}

criterion_group!(benches, object_bench, index_bench, engine_bench);
criterion_main!(benches);
