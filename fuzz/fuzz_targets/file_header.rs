//! Oracle: `FileHeader::decode` never panics; it accepts exactly the 8 bytes `encode` writes.
#![no_main]
use kubesnap::format::{FileHeader, FileType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(&t) = data.first() else { return };
    let Some(ft) = FileType::from_u8(t % 8) else { return };
    let rest = &data[1..];
    if let Ok(body) = FileHeader::decode(rest, ft) {
        assert_eq!(&rest[..8], &FileHeader::encode(ft));
        assert_eq!(body, &rest[8..]);
    }
});
