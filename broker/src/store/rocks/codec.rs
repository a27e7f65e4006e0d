//! Keys and records of the RocksDB layout (docs/adr/0005-broker-storage.md).
//!
//! Integers in keys are big-endian so that byte order (RocksDB's default comparator) is numeric order: a
//! queue's messages are one contiguous range in seq order, and the TTL index sorts by deadline.
//! Records start with a format version byte, so a later layout can be read beside this one.

use bytes::Bytes;

use crate::store::{Result, StoreError, StoredMessage};

/// The only record version this code writes (and reads).
const VERSION: u8 = 1;
/// Message record flag: an 8-byte deadline follows the delivery count.
const HAS_EXPIRY: u8 = 1;

/// `messages` key: queue id ++ seq.
pub fn message_key(queue: u64, seq: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&queue.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The first key after every message of `queue` (an 8-byte prefix sorts before all 16-byte keys that
/// extend it, so this bounds the range exclusively). Queue ids never reach `u64::MAX`.
pub fn queue_end(queue: u64) -> [u8; 8] {
    (queue + 1).to_be_bytes()
}

pub fn decode_message_key(key: &[u8]) -> Result<(u64, u64)> {
    match key.len() {
        16 => Ok((be64(&key[..8]), be64(&key[8..]))),
        n => Err(corrupt("messages", format!("key of {n} bytes"))),
    }
}

/// `expiry` key: deadline ++ queue id ++ seq, so a forward scan yields the earliest deadline first.
pub fn expiry_key(expires_at: u64, queue: u64, seq: u64) -> [u8; 24] {
    let mut key = [0; 24];
    key[..8].copy_from_slice(&expires_at.to_be_bytes());
    key[8..16].copy_from_slice(&queue.to_be_bytes());
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// (expires_at, queue id, seq).
pub fn decode_expiry_key(key: &[u8]) -> Result<(u64, u64, u64)> {
    match key.len() {
        24 => Ok((be64(&key[..8]), be64(&key[8..16]), be64(&key[16..]))),
        n => Err(corrupt("expiry", format!("key of {n} bytes"))),
    }
}

/// Message record: version, flags, delivery count (u32), [deadline (u64) if flagged], body.
pub fn encode_message(m: &StoredMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + m.body.len());
    out.push(VERSION);
    out.push(if m.expires_at.is_some() {
        HAS_EXPIRY
    } else {
        0
    });
    out.extend_from_slice(&m.delivery_count.to_be_bytes());
    if let Some(at) = m.expires_at {
        out.extend_from_slice(&at.to_be_bytes());
    }
    out.extend_from_slice(&m.body);
    out
}

/// The header of a message record: (delivery count, deadline, offset of the body).
fn decode_header(record: &[u8]) -> Result<(u32, Option<u64>, usize)> {
    let [version, flags, rest @ ..] = record else {
        return Err(corrupt(
            "messages",
            format!("record of {} bytes", record.len()),
        ));
    };
    if *version != VERSION {
        return Err(corrupt(
            "messages",
            format!("unknown record version {version}"),
        ));
    }
    if flags & !HAS_EXPIRY != 0 {
        return Err(corrupt("messages", format!("unknown flags {flags:#x}")));
    }
    let need = if flags & HAS_EXPIRY != 0 { 12 } else { 4 };
    if rest.len() < need {
        return Err(corrupt(
            "messages",
            format!("header truncated at {} bytes", record.len()),
        ));
    }
    let delivery_count = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let expires_at = (need == 12).then(|| be64(&rest[4..12]));
    Ok((delivery_count, expires_at, 2 + need))
}

/// Only the deadline: what deletes and overwrites need to keep the TTL index in step, without copying bodies.
pub fn decode_expiry(record: &[u8]) -> Result<Option<u64>> {
    decode_header(record).map(|(_, at, _)| at)
}

pub fn decode_message(seq: u64, record: &[u8]) -> Result<StoredMessage> {
    let (delivery_count, expires_at, body) = decode_header(record)?;
    let body = Bytes::copy_from_slice(&record[body..]);
    Ok(StoredMessage {
        seq,
        delivery_count,
        expires_at,
        body,
    })
}

/// `queues` record: version, queue id, the broker's config bytes.
pub fn encode_queue(id: u64, config: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + config.len());
    out.push(VERSION);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(config);
    out
}

/// (queue id, config).
pub fn decode_queue(record: &[u8]) -> Result<(u64, Bytes)> {
    match record {
        [VERSION, rest @ ..] if rest.len() >= 8 => {
            Ok((be64(&rest[..8]), Bytes::copy_from_slice(&rest[8..])))
        }
        [v, ..] if *v != VERSION => Err(corrupt("queues", format!("unknown record version {v}"))),
        _ => Err(corrupt(
            "queues",
            format!("record of {} bytes", record.len()),
        )),
    }
}

pub fn decode_u64(what: &'static str, value: &[u8]) -> Result<u64> {
    match value.len() {
        8 => Ok(be64(value)),
        n => Err(corrupt(what, format!("expected 8 bytes, found {n}"))),
    }
}

/// Callers check the length first.
fn be64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn corrupt(what: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { what, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(expires_at: Option<u64>) -> StoredMessage {
        StoredMessage {
            seq: 7,
            delivery_count: 0x0102_0304,
            expires_at,
            body: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn messages_round_trip_with_and_without_deadline() {
        for m in [message(None), message(Some(0)), message(Some(u64::MAX))] {
            let record = encode_message(&m);
            assert_eq!(decode_message(7, &record).unwrap(), m);
            assert_eq!(decode_expiry(&record).unwrap(), m.expires_at);
        }
        assert_eq!(
            encode_message(&message(None)).len(),
            2 + 4 + 5,
            "no deadline, no deadline bytes"
        );
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(message_key(1, 255) < message_key(1, 256));
        assert!(message_key(1, u64::MAX) < message_key(2, 0));
        assert!(message_key(1, u64::MAX).as_slice() < queue_end(1).as_slice());
        assert!(queue_end(1).as_slice() <= message_key(2, 0).as_slice());
        assert!(expiry_key(9, 5, 5) < expiry_key(10, 0, 0));
        assert_eq!(decode_message_key(&message_key(3, 4)).unwrap(), (3, 4));
        assert_eq!(decode_expiry_key(&expiry_key(1, 2, 3)).unwrap(), (1, 2, 3));
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let good = encode_message(&message(Some(5)));
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![VERSION],
            vec![9, 0, 0, 0, 0, 0],
            vec![VERSION, 0x80, 0, 0, 0, 0],
            good[..8].to_vec(), // flagged deadline cut short
            vec![VERSION, 0, 0, 0],
        ];
        for record in bad {
            assert!(
                matches!(decode_message(1, &record), Err(StoreError::Corrupt { .. })),
                "{record:?}"
            );
        }
        assert!(decode_queue(&[VERSION, 1, 2]).is_err());
        assert!(decode_queue(&[2; 20]).is_err());
        assert!(decode_queue(&[]).is_err());
        assert!(decode_message_key(&[0; 15]).is_err());
        assert!(decode_expiry_key(&[0; 16]).is_err());
        assert!(decode_u64("meta", &[1, 2]).is_err());
        assert_eq!(
            decode_queue(&encode_queue(42, b"cfg")).unwrap(),
            (42, Bytes::from_static(b"cfg"))
        );
    }
}
