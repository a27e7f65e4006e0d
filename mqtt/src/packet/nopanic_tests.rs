//! Robustness: many pseudo-random, truncated and mutated packets through `check` and `parse`.
//! Nothing may panic, `check` may never claim more bytes than it was given, and whatever
//! `parse` accepts must re-encode and parse back to the same packet.

use bytes::{Bytes, BytesMut};

use super::samples::sample_packets;
use super::*;

/// xorshift64*: tiny, deterministic, good enough to shake a decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn exercise(data: &[u8], stats: &mut [usize; 2]) {
    for v in [Version::V311, Version::V5] {
        if let Ok(Some(len)) = check(data, 1 << 16) {
            assert!(len <= data.len(), "check claimed {len} of {}", data.len());
            assert!(len >= 2);
            let packet = Bytes::copy_from_slice(&data[..len]);
            if let Ok(p) = parse(packet, v) {
                stats[0] += 1;
                // Whatever parses must survive a round trip. (CONNECT carries its own
                // version.)
                let mut out = BytesMut::new();
                p.encode(v, &mut out)
                    .unwrap_or_else(|e| panic!("re-encode of {p:?} failed: {e}"));
                let again = parse(out.freeze(), v)
                    .unwrap_or_else(|e| panic!("re-parse of {p:?} failed: {e}"));
                assert_eq!(again, p);
            } else {
                stats[1] += 1;
            }
        }
        // The whole input as one packet, whatever its header says.
        let _ = parse(Bytes::copy_from_slice(data), v);
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seeds = Vec::new();
    for v in [Version::V311, Version::V5] {
        for p in sample_packets(v) {
            let mut out = BytesMut::new();
            p.encode(v, &mut out).expect("sample encodes");
            seeds.push(out.to_vec());
        }
    }
    let mut stats = [0usize; 2];
    for round in 0..300_000 {
        let mut data = seeds[rng.below(seeds.len())].clone();
        match round % 5 {
            // Flip a few bytes.
            0 | 1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(data.len());
                    data[i] ^= 1 << rng.below(8);
                }
            }
            // Overwrite a byte with a random value (lengths, ids, flags).
            2 => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            // Truncate, keeping the header's length claim.
            3 => data.truncate(rng.below(data.len() + 1)),
            // Pure noise with a plausible first byte.
            _ => {
                let n = rng.below(64);
                data = (0..n).map(|_| rng.next() as u8).collect();
                if let Some(b) = data.first_mut() {
                    *b = (*b & 0xf0) | [0, 2][rng.below(2)];
                }
            }
        }
        exercise(&data, &mut stats);
    }
    eprintln!("accepted {}, rejected {}", stats[0], stats[1]);
    // The mutations must reach both outcomes, or this test proves nothing.
    assert!(stats[0] > 10_000, "accepted {}", stats[0]);
    assert!(stats[1] > 10_000, "rejected {}", stats[1]);
}
