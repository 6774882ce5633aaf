//! Oracle: `SnapshotManifest::decode` never panics; decode(encode(x)) == x for what it accepts.
#![no_main]
use kubesnap::format::snapshot::SnapshotManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SnapshotManifest::decode(data) {
        assert_eq!(SnapshotManifest::decode(&m.encode()).expect("re-decode"), m);
    }
});
