//! A receiving connection: large credit, batched ranged dispositions, latency from the stamp
//! each sender put in the message.

use std::time::Instant;

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::ValueEnum;
use shoal_amqp::{DeliveryState, Disposition, Performative, Role, Transfer};

use crate::stats::{now_ns, Stats, Window};
use crate::template::{stamp_offset, STAMP_LEN};
use crate::wire::{Endpoint, Wire, INCOMING_WINDOW};

/// When a receiver grants more credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Refill {
    /// Once half of the credit is used: deliveries keep flowing while the flow travels.
    Half,
    /// Only once all of it is used. For peers that apply a new link-credit as an absolute
    /// amount from whatever they have already sent, instead of from the delivery-count the
    /// receiver states (AMQP 1.0 section 2.6.7): RabbitMQ 3.x's AMQP 1.0 plugin does, so a
    /// top-up that crosses deliveries in flight lets it send past the granted limit. With
    /// nothing in flight when the flow goes out, both readings agree.
    Empty,
}

impl Refill {
    /// Whether a receiver holding `credit` of `full` grants more now.
    pub fn due(self, credit: u32, full: u32) -> bool {
        match self {
            Refill::Half => credit <= full / 2,
            Refill::Empty => credit == 0,
        }
    }
}

pub struct ReceiverConfig {
    pub endpoint: Endpoint,
    pub address: String,
    pub name: String,
    /// The data size senders use (to find the stamp: the data is the message's tail).
    pub size: usize,
    pub presettled: bool,
    /// Credit kept granted; topped up as `refill` says.
    pub credit: u32,
    pub refill: Refill,
}

pub async fn connect(cfg: &ReceiverConfig) -> Result<Wire> {
    let mut wire = Wire::connect(
        &cfg.endpoint,
        &cfg.address,
        Role::Receiver,
        cfg.presettled,
        &cfg.name,
    )
    .await?;
    let delivery_count = wire.remote_attach.initial_delivery_count.unwrap_or(0);
    wire.flow(Some((delivery_count, cfg.credit)));
    wire.flush().await?;
    Ok(wire)
}

/// A multi-frame delivery in progress.
#[derive(Default)]
struct Partial {
    active: bool,
    settled: bool,
    delivery_id: u32,
    chunks: Vec<Bytes>,
}

/// Consecutive unsettled deliveries to accept with one disposition.
struct Pending {
    first: u32,
    last: u32,
}

pub async fn run(mut wire: Wire, cfg: ReceiverConfig, window: Window) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut delivery_count = wire.remote_attach.initial_delivery_count.unwrap_or(0);
    let mut credit = cfg.credit;
    let mut partial = Partial::default();
    let mut pending: Option<Pending> = None;
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        wire.read_available()?;
        let in_window = window.contains(now);
        let arrived_ns = now_ns();
        while let Some(frame) = wire.next_frame()? {
            let Some(p) = frame.performative else {
                continue;
            };
            let t = match p {
                Performative::Transfer(t) => t,
                Performative::Flow(f) => {
                    wire.on_session_flow(&f);
                    if f.echo {
                        wire.flow(Some((delivery_count, credit)));
                    }
                    continue;
                }
                Performative::Disposition(_) => continue,
                other => {
                    wire.unexpected(other)?;
                    continue;
                }
            };
            if wire.incoming_window == 0 {
                bail!("the peer sent beyond our session window");
            }
            wire.incoming_window -= 1;
            wire.next_incoming_id = wire.next_incoming_id.wrapping_add(1);
            if !partial.active {
                let Some(id) = t.delivery_id else {
                    bail!("first transfer of a delivery without a delivery-id");
                };
                if credit == 0 {
                    bail!(
                        "the peer sent without credit (delivery-count {delivery_count}, our limit \
                         reached): a peer that applies link-credit without the receiver's \
                         delivery-count does this when a top-up crosses deliveries in flight \
                         (RabbitMQ 3.x); --credit-refill empty avoids it"
                    );
                }
                credit -= 1;
                delivery_count = delivery_count.wrapping_add(1);
                partial.active = true;
                partial.delivery_id = id;
                partial.settled = false;
            }
            if t.settled == Some(true) {
                partial.settled = true;
            }
            if t.aborted {
                partial.active = false;
                partial.chunks.clear();
                continue;
            }
            if !complete(&mut partial, &t, frame.payload, |message| {
                if in_window {
                    stats.received += 1;
                    stats.last_received = Some(now);
                    if let Some(sent_ns) = stamp(message, cfg.size) {
                        stats
                            .latency
                            .saturating_record(arrived_ns.saturating_sub(sent_ns).max(1));
                    }
                }
            }) {
                continue;
            }
            if !partial.settled {
                let id = partial.delivery_id;
                match &mut pending {
                    Some(p) if p.last.wrapping_add(1) == id => p.last = id,
                    _ => {
                        flush_disposition(&mut wire, pending.take());
                        pending = Some(Pending {
                            first: id,
                            last: id,
                        });
                    }
                }
            }
        }
        flush_disposition(&mut wire, pending.take());
        if cfg.refill.due(credit, cfg.credit) {
            credit = cfg.credit;
            wire.flow(Some((delivery_count, credit)));
        } else if wire.incoming_window <= INCOMING_WINDOW / 2 {
            wire.flow(None);
        }
        wire.write_available()?;
        wire.wait(window.end).await?;
    }
    wire.close().await;
    Ok(stats)
}

/// Adds a frame to the delivery; when it is the last, hands the whole message to `done` and
/// returns true.
fn complete(
    partial: &mut Partial,
    t: &Transfer,
    payload: Bytes,
    done: impl FnOnce(Chunks<'_>),
) -> bool {
    if t.more {
        partial.chunks.push(payload);
        return false;
    }
    partial.active = false;
    if partial.chunks.is_empty() {
        done(Chunks::One(&payload));
    } else {
        partial.chunks.push(payload);
        done(Chunks::Many(&partial.chunks));
        partial.chunks.clear();
    }
    true
}

enum Chunks<'a> {
    One(&'a [u8]),
    Many(&'a [Bytes]),
}

/// The sender's stamp: the first 8 bytes of the data, which is the message's last `size` bytes.
fn stamp(message: Chunks<'_>, size: usize) -> Option<u64> {
    let mut b = [0u8; STAMP_LEN];
    match message {
        Chunks::One(m) => {
            let at = stamp_offset(m.len(), size)?;
            b.copy_from_slice(m.get(at..at + STAMP_LEN)?);
        }
        Chunks::Many(chunks) => {
            let total: usize = chunks.iter().map(|c| c.len()).sum();
            let at = stamp_offset(total, size)?;
            let bytes = chunks
                .iter()
                .flat_map(|c| c.iter().copied())
                .skip(at)
                .take(STAMP_LEN);
            let mut n = 0;
            for (dst, src) in b.iter_mut().zip(bytes) {
                *dst = src;
                n += 1;
            }
            if n < STAMP_LEN {
                return None;
            }
        }
    }
    Some(u64::from_be_bytes(b))
}

fn flush_disposition(wire: &mut Wire, pending: Option<Pending>) {
    let Some(p) = pending else { return };
    wire.emit(&Performative::Disposition(Disposition {
        role: Role::Receiver,
        first: p.first,
        last: (p.last != p.first).then_some(p.last),
        settled: true,
        state: Some(DeliveryState::Accepted),
        batchable: false,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TransferTemplate;
    use bytes::BytesMut;

    #[test]
    fn refill_modes_top_up_at_half_or_at_zero() {
        assert!(!Refill::Half.due(501, 1000));
        assert!(Refill::Half.due(500, 1000));
        assert!(Refill::Half.due(0, 1));
        assert!(!Refill::Empty.due(1, 1000));
        assert!(Refill::Empty.due(0, 1000));
    }

    #[test]
    fn the_stamp_is_found_in_one_or_many_chunks() {
        let t = TransferTemplate::new(100, true, false);
        let mut buf = BytesMut::new();
        t.write(&mut buf, 1 << 20, 0, 0, 0x1122_3344_5566_7788);
        let frame = shoal_amqp::parse_amqp_frame(buf.freeze()).unwrap();
        let payload = frame.payload;
        assert_eq!(
            stamp(Chunks::One(&payload), 100),
            Some(0x1122_3344_5566_7788)
        );
        let at = stamp_offset(payload.len(), 100).unwrap();
        // Split right through the stamp.
        let chunks = [payload.slice(..at + 3), payload.slice(at + 3..)];
        assert_eq!(
            stamp(Chunks::Many(&chunks), 100),
            Some(0x1122_3344_5566_7788)
        );
        assert_eq!(stamp(Chunks::One(&payload[..4]), 100), None);
    }
}
