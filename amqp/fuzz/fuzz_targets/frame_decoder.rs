//! Feeds arbitrary bytes to every decoder a peer can reach. Any panic, overflow or runaway
//! allocation is a bug.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shoal_amqp::{
    check_frame, decode_message, parse_amqp_frame, parse_protocol_header, parse_sasl_frame,
    scan_message,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_protocol_header(data);
    let _ = scan_message(data);
    let _ = decode_message(data);

    // The connection path: check, split off exactly one frame, parse it as AMQP and SASL.
    let mut rest = data;
    while let Ok(Some(len)) = check_frame(rest, 1 << 20) {
        let Some((frame, tail)) = rest.split_at_checked(len) else {
            panic!("check_frame returned {len} for {} bytes", rest.len());
        };
        let frame = Bytes::copy_from_slice(frame);
        let _ = parse_sasl_frame(frame.clone());
        if let Ok(f) = parse_amqp_frame(frame) {
            let _ = scan_message(&f.payload);
        }
        rest = tail;
    }

    // Whole input as one frame, whatever its size field says.
    let whole = Bytes::copy_from_slice(data);
    let _ = parse_amqp_frame(whole.clone());
    let _ = parse_sasl_frame(whole);
});
