//! Oracle: `PackHeader::decode` never panics on any input; whatever it accepts re-encodes to the
//! same bytes (one encoding per value), and decode(encode(x)) == x.
#![no_main]
use kubesnap::format::pack::PackHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = PackHeader::decode(data) {
        let enc = h.encode();
        assert_eq!(enc, data, "accepted bytes must be the canonical encoding");
        assert_eq!(PackHeader::decode(&enc).expect("re-decode"), h);
    }
});
