//! Oracle: `Node::decode` never panics; accepted bytes are the canonical encoding (so a node has
//! exactly one id), and decode(encode(x)) == x.
#![no_main]
use kubesnap::format::tree::Node;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = Node::decode(data) {
        let enc = n.encode();
        assert_eq!(enc, data);
        assert_eq!(Node::decode(&enc).expect("re-decode"), n);
    }
});
