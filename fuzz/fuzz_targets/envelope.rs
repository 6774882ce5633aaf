//! Oracle: opening an envelope never panics; a sealed message opens to itself; and any change
//! to the envelope (a flipped bit anywhere) or to its associated data is rejected by
//! authentication.
#![no_main]
use kubesnap::crypto::{open_with, seal_with_salt};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes as an envelope: must not open (with overwhelming probability) nor panic.
    let _ = open_with(&KEY, b"aad", data);
    if data.len() < 26 {
        return;
    }
    let (salt, rest) = data.split_at(24);
    let (flip, msg) = rest.split_at(2);
    let salt: [u8; 24] = salt.try_into().expect("24 bytes");
    let sealed = seal_with_salt(&KEY, &salt, b"aad", msg);
    assert_eq!(open_with(&KEY, b"aad", &sealed).expect("opens"), msg);
    let i = usize::from(u16::from_le_bytes([flip[0], flip[1]])) % sealed.len();
    let mut bad = sealed.clone();
    bad[i] ^= 1 << (flip[0] % 8);
    assert!(open_with(&KEY, b"aad", &bad).is_err(), "a flipped bit must be rejected");
    assert!(open_with(&KEY, b"aaD", &sealed).is_err(), "other associated data must be rejected");
});
