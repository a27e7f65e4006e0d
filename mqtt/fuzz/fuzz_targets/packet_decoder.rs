//! Feeds arbitrary bytes to every decoder a client can reach. Any panic, overflow or runaway
//! allocation is a bug; so is a packet that parses but does not survive a re-encode.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal_mqtt::{check, parse, topic, Version};

fuzz_target!(|data: &[u8]| {
    // The connection path: check, split off exactly one packet, parse it in both versions.
    let mut rest = data;
    while let Ok(Some(len)) = check(rest, 1 << 20) {
        let Some((packet, tail)) = rest.split_at_checked(len) else {
            panic!("check returned {len} for {} bytes", rest.len());
        };
        for v in [Version::V311, Version::V5] {
            if let Ok(p) = parse(Bytes::copy_from_slice(packet), v) {
                let mut out = BytesMut::new();
                p.encode(v, &mut out).expect("a parsed packet re-encodes");
                assert_eq!(parse(out.freeze(), v).as_ref(), Ok(&p));
            }
        }
        rest = tail;
    }

    // Whole input as one packet, whatever its length field says.
    let _ = parse(Bytes::copy_from_slice(data), Version::V5);

    // Topic handling on arbitrary text.
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = topic::validate_topic_filter(data);
        let _ = topic::validate_topic_name(data);
        let (_, filter) = topic::split_shared(s);
        if let Some((f, t)) = filter.split_once('\n') {
            let _ = topic::matches(f, t);
        }
    }
});
