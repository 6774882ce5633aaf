//! Oracle: `KeyFile::decode` never panics, never accepts KDF parameters out of bounds, and
//! decode(encode(x)) == x.
#![no_main]
use kubesnap::format::key::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = KeyFile::decode(data) {
        assert!(k.kdf.m_cost <= 4 * 1024 * 1024 && k.kdf.t_cost <= 100 && k.kdf.p_cost <= 64);
        assert_eq!(KeyFile::decode(&k.encode()).expect("re-decode"), k);
    }
});
