//! Oracle: `Config::decode` never panics; what it accepts has sane parameters and
//! decode(encode(x)) == x.
#![no_main]
use kubesnap::format::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((c, _)) = Config::decode(data) {
        assert!(c.chunking.min_size <= c.chunking.avg_size && c.chunking.avg_size <= c.chunking.max_size);
        assert_eq!(Config::decode(&c.encode()).expect("re-decode").0, c);
    }
});
