//! Oracle: `decode_trailer` never panics; an accepted trailer re-encodes to the same 12 bytes.
#![no_main]
use kubesnap::format::pack::{decode_trailer, encode_trailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = decode_trailer(data) {
        assert_eq!(&encode_trailer(n)[..], data);
    }
});
