//! Oracle: `IndexBlock::decode` never panics; accepted bytes are the canonical encoding; every
//! entry it accepted can be found and points inside its frame.
#![no_main]
use kubesnap::format::index::IndexBlock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = IndexBlock::decode(data) {
        assert_eq!(b.encode(), data);
        for e in &b.entries {
            let loc = b.find(&e.id).expect("an accepted entry is found");
            assert!(u64::from(loc.raw_offset) + u64::from(loc.raw_length) <= u64::from(loc.frame.raw_length));
        }
    }
});
