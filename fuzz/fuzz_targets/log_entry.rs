//! Oracle: `LogEntry::decode` and `Checkpoint::decode` never panic; decode(encode(x)) == x.
#![no_main]
use kubesnap::format::log::{Checkpoint, LogEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = LogEntry::decode(data) {
        assert_eq!(LogEntry::decode(&e.encode()).expect("re-decode"), e);
    }
    if let Ok(c) = Checkpoint::decode(data) {
        assert_eq!(Checkpoint::decode(&c.encode()).expect("re-decode"), c);
    }
});
