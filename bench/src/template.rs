//! Pre-encoded transfers: the frame for one message is built once; each send copies it and
//! patches the delivery-id, the delivery-tag and the send timestamp in place.

use bytes::{BufMut, Bytes, BytesMut};
use shoal_amqp::{
    encode_frame_header_for_payload, Body, Header, MessageBuilder, Performative, Transfer,
};

/// Bytes of the timestamp (nanoseconds since the Unix epoch, big-endian) at the start of the
/// message's data section.
pub const STAMP_LEN: usize = 8;

/// A transfer frame template for one message size.
#[derive(Debug, Clone)]
pub struct TransferTemplate {
    /// A whole single-frame transfer of the message on handle 0.
    frame: Vec<u8>,
    id_at: usize,
    tag_at: usize,
    stamp_at: usize,
    /// The encoded message alone (for messages that need several frames).
    message: Bytes,
    /// Where the stamp is in `message`.
    message_stamp_at: usize,
    settled: bool,
}

/// Offset of the data section's content from the end of the message: the data is the last
/// `size` bytes, whatever sections a server puts in front of it.
pub fn stamp_offset(message_len: usize, size: usize) -> Option<usize> {
    message_len.checked_sub(size.max(STAMP_LEN))
}

impl TransferTemplate {
    /// A message whose data section holds `size` bytes (at least [`STAMP_LEN`]). `durable`
    /// puts a header with `durable=true` in front (a broker must store such a message before it
    /// accepts it); otherwise there is no header, which means not durable.
    pub fn new(size: usize, settled: bool, durable: bool) -> TransferTemplate {
        let size = size.max(STAMP_LEN);
        let message = MessageBuilder {
            header: durable.then(|| Header {
                durable: true,
                ..Header::default()
            }),
            body: Body::Data(Bytes::from(vec![0x5a; size])),
            ..MessageBuilder::default()
        }
        .to_bytes();
        let message_stamp_at = message.len() - size;

        // The transfer performative with fixed-width fields, so they can be patched:
        // handle uint, delivery-id uint, delivery-tag vbin8[8], message-format uint0, settled.
        let mut perf = Vec::with_capacity(32);
        perf.extend_from_slice(&[0x00, 0x53, 0x14]);
        let mut fields = Vec::with_capacity(24);
        fields.push(0x70);
        fields.put_u32(0);
        fields.push(0x70);
        let id_in_fields = fields.len();
        fields.put_u32(0);
        fields.extend_from_slice(&[0xa0, 8]);
        let tag_in_fields = fields.len();
        fields.put_u64(0);
        fields.push(0x43);
        fields.push(if settled { 0x41 } else { 0x42 });
        perf.push(0xc0);
        perf.push((fields.len() + 1) as u8);
        perf.push(5);
        let fields_at = perf.len();
        perf.extend_from_slice(&fields);

        let mut frame = Vec::with_capacity(8 + perf.len() + message.len());
        frame.put_u32((8 + perf.len() + message.len()) as u32);
        frame.extend_from_slice(&[2, 0, 0, 0]);
        let perf_at = frame.len();
        frame.extend_from_slice(&perf);
        let msg_at = frame.len();
        frame.extend_from_slice(&message);
        TransferTemplate {
            id_at: perf_at + fields_at + id_in_fields,
            tag_at: perf_at + fields_at + tag_in_fields,
            stamp_at: msg_at + message_stamp_at,
            frame,
            message,
            message_stamp_at,
            settled,
        }
    }

    /// The encoded message's size.
    #[cfg(test)]
    pub fn message_len(&self) -> usize {
        self.message.len()
    }

    /// How many frames one message takes under the peer's max-frame-size.
    pub fn frames_per_message(&self, max_frame: u32) -> u32 {
        if self.frame.len() <= max_frame as usize {
            1
        } else {
            self.message.len().div_ceil(Self::max_payload(max_frame)) as u32
        }
    }

    fn max_payload(max_frame: u32) -> usize {
        (max_frame as usize)
            .saturating_sub(shoal_amqp::TRANSFER_OVERHEAD_MAX)
            .max(1)
    }

    /// Appends the frame(s) of one delivery.
    pub fn write(
        &self,
        buf: &mut BytesMut,
        max_frame: u32,
        delivery_id: u32,
        tag: u64,
        stamp_ns: u64,
    ) {
        if self.frame.len() <= max_frame as usize {
            let start = buf.len();
            buf.extend_from_slice(&self.frame);
            let f = &mut buf[start..];
            f[self.id_at..self.id_at + 4].copy_from_slice(&delivery_id.to_be_bytes());
            f[self.tag_at..self.tag_at + 8].copy_from_slice(&tag.to_be_bytes());
            f[self.stamp_at..self.stamp_at + 8].copy_from_slice(&stamp_ns.to_be_bytes());
            return;
        }
        // Large messages are rare and slow anyway: copy, stamp, split with the codec.
        let mut message = self.message.to_vec();
        let at = self.message_stamp_at;
        message[at..at + 8].copy_from_slice(&stamp_ns.to_be_bytes());
        let max_payload = Self::max_payload(max_frame);
        let chunks = message.chunks(max_payload);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.enumerate() {
            let first = i == 0;
            let transfer = Transfer {
                handle: 0,
                delivery_id: first.then_some(delivery_id),
                delivery_tag: first.then(|| Bytes::copy_from_slice(&tag.to_be_bytes())),
                message_format: first.then_some(0),
                settled: first.then_some(self.settled),
                more: i != last,
                ..Transfer::default()
            };
            encode_frame_header_for_payload(buf, 0, &Performative::Transfer(transfer), chunk.len());
            buf.extend_from_slice(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_amqp::{check_frame, decode_message, parse_amqp_frame};

    fn parse_all(mut buf: BytesMut) -> Vec<(Transfer, Bytes)> {
        let mut out = Vec::new();
        while let Some(len) = check_frame(&buf, u32::MAX).unwrap() {
            let f = parse_amqp_frame(buf.split_to(len).freeze()).unwrap();
            let Some(Performative::Transfer(t)) = f.performative else {
                panic!("not a transfer")
            };
            out.push((t, f.payload));
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn patched_frames_decode_with_the_codec() {
        for (size, settled) in [(1, true), (100, false), (300, true), (70_000, false)] {
            let t = TransferTemplate::new(size, settled, false);
            let mut buf = BytesMut::new();
            t.write(&mut buf, 1 << 20, 7, 0x0102_0304_0506_0708, 42);
            t.write(&mut buf, 1 << 20, u32::MAX, 9, 43);
            let frames = parse_all(buf);
            assert_eq!(frames.len(), 2);
            let (tr, payload) = &frames[0];
            assert_eq!(tr.handle, 0);
            assert_eq!(tr.delivery_id, Some(7));
            assert_eq!(
                tr.delivery_tag.as_deref(),
                Some(&[1, 2, 3, 4, 5, 6, 7, 8][..])
            );
            assert_eq!(tr.settled, Some(settled));
            assert!(!tr.more);
            let at = stamp_offset(payload.len(), size).unwrap();
            assert_eq!(&payload[at..at + 8], &42u64.to_be_bytes());
            let Body::Data(data) = decode_message(payload).unwrap().body else {
                panic!("not data")
            };
            assert_eq!(data.len(), size.max(8));
            assert_eq!(frames[1].0.delivery_id, Some(u32::MAX));
            assert_eq!(&frames[1].1[at..at + 8], &43u64.to_be_bytes());
        }
    }

    #[test]
    fn large_messages_are_split_and_stamped() {
        let size = 5000;
        let t = TransferTemplate::new(size, false, false);
        assert_eq!(
            t.frames_per_message(512),
            t.message_len().div_ceil(512 - 64) as u32
        );
        let mut buf = BytesMut::new();
        t.write(&mut buf, 512, 3, 3, 99);
        let frames = parse_all(buf);
        assert_eq!(frames.len() as u32, t.frames_per_message(512));
        assert!(frames.iter().all(|(_, p)| p.len() + 64 <= 512));
        assert_eq!(frames[0].0.delivery_id, Some(3));
        assert!(frames[..frames.len() - 1].iter().all(|(t, _)| t.more));
        assert!(!frames.last().unwrap().0.more);
        let joined: Vec<u8> = frames.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        let at = stamp_offset(joined.len(), size).unwrap();
        assert_eq!(&joined[at..at + 8], &99u64.to_be_bytes());
    }

    #[test]
    fn durable_templates_carry_a_durable_header() {
        for (size, durable) in [(100, true), (100, false), (5000, true)] {
            let t = TransferTemplate::new(size, false, durable);
            let mut buf = BytesMut::new();
            // 512: the 5000-byte message is split, the 100-byte one is not.
            t.write(&mut buf, 512, 1, 1, 7);
            let frames = parse_all(buf);
            let joined: Vec<u8> = frames.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let msg = decode_message(&joined).unwrap();
            assert_eq!(msg.header.map(|h| h.durable), durable.then_some(true));
            let at = stamp_offset(joined.len(), size).unwrap();
            assert_eq!(&joined[at..at + 8], &7u64.to_be_bytes());
        }
    }
}
