//! Oracle: `IndexFooter::decode` never panics; accepted bytes re-encode identically and the
//! blocks are ordered, so `block_for` finds each block's first id in that block.
#![no_main]
use kubesnap::format::index::IndexFooter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = IndexFooter::decode(data) {
        assert_eq!(f.encode(), data);
        for (i, b) in f.blocks.iter().enumerate() {
            assert_eq!(f.block_for(&b.first), Some(i));
        }
    }
});
