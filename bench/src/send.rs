//! A sending connection: pipelined, pre-encoded transfers up to the granted credit.

use std::time::{Duration, Instant};

use anyhow::Result;
use shoal_amqp::{DeliveryState, Disposition, Flow, Performative, Role};

use crate::stats::{now_ns, Stats, Window};
use crate::template::TransferTemplate;
use crate::wire::{Endpoint, Wire};

/// Stop encoding once this much output is waiting: one write carries many messages, and
/// memory stays bounded.
const WRITE_BATCH: usize = 128 * 1024;

/// Messages encoded with one clock reading.
const RESTAMP_EVERY: u32 = 64;

pub struct SenderConfig {
    pub endpoint: Endpoint,
    pub address: String,
    pub name: String,
    pub size: usize,
    pub presettled: bool,
    /// Messages per second for this sender; `None`: as fast as credit allows.
    pub rate: Option<f64>,
    /// Mark messages durable.
    pub durable: bool,
    /// Stop after this many messages, once all of them have an outcome (or are settled, when
    /// presettled); `None`: send until the window ends.
    pub count: Option<u64>,
    /// At most this many unsettled messages without an outcome at a time; `None`: as many as
    /// the peer's credit allows.
    pub max_in_flight: Option<u64>,
}

pub async fn connect(cfg: &SenderConfig) -> Result<Wire> {
    Wire::connect(
        &cfg.endpoint,
        &cfg.address,
        Role::Sender,
        cfg.presettled,
        &cfg.name,
    )
    .await
}

struct Credit {
    delivery_count: u32,
    /// The peer's delivery-count + link-credit.
    limit: u32,
}

impl Credit {
    fn available(&self) -> u32 {
        let c = self.limit.wrapping_sub(self.delivery_count);
        if c > u32::MAX / 2 {
            0
        } else {
            c
        }
    }
}

pub async fn run(mut wire: Wire, cfg: SenderConfig, window: Window) -> Result<Stats> {
    let template = TransferTemplate::new(cfg.size, cfg.presettled, cfg.durable);
    let mut stats = Stats::default();
    let mut credit = Credit {
        delivery_count: 0,
        limit: 0,
    };
    let mut next_delivery_id: u32 = 0;
    // Pacing starts with the warm-up, not with the measured window.
    let paced_from = Instant::now();
    let mut produced: u64 = 0;
    // Outcomes received for unsettled deliveries (to know when a counted run is complete).
    let mut outcomes: u64 = 0;
    let limit = cfg.count.unwrap_or(u64::MAX);
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        wire.read_available()?;
        while let Some(frame) = wire.next_frame()? {
            let Some(p) = frame.performative else {
                continue;
            };
            match p {
                Performative::Flow(f) => on_flow(&mut wire, &mut credit, &f),
                Performative::Disposition(d) => {
                    let n = u64::from(d.last.unwrap_or(d.first).wrapping_sub(d.first)) + 1;
                    if is_outcome(&d) {
                        outcomes += n;
                    }
                    if !d.settled {
                        settle(&mut wire, &d);
                    }
                    if window.contains(now) {
                        match d.state {
                            Some(DeliveryState::Accepted) | None => stats.accepted += n,
                            Some(DeliveryState::Rejected { .. }) => stats.rejected += n,
                            Some(DeliveryState::Released) => stats.released += n,
                            Some(DeliveryState::Modified { .. }) => stats.modified += n,
                            Some(DeliveryState::Received { .. }) => {}
                        }
                    }
                }
                other => wire.unexpected(other)?,
            }
        }

        // How many the rate allows now, and when the next one is due.
        let mut allowed = limit.saturating_sub(produced);
        if let (Some(max), false) = (cfg.max_in_flight, cfg.presettled) {
            allowed = allowed.min(in_flight_room(max, produced, outcomes));
        }
        let mut due = window.end;
        if let Some(rate) = cfg.rate {
            let target = (now.duration_since(paced_from).as_secs_f64() * rate) as u64;
            allowed = allowed.min(target.saturating_sub(produced));
            if allowed == 0 {
                due = due.min(paced_from + Duration::from_secs_f64((produced + 1) as f64 / rate));
            }
        }
        let frames = template.frames_per_message(wire.remote_max_frame);
        let in_window = window.contains(now);
        let mut stamp = now_ns();
        let mut restamp = RESTAMP_EVERY;
        while allowed > 0
            && credit.available() > 0
            && wire.remote_incoming_window >= frames
            && wire.wbuf.len() < WRITE_BATCH
        {
            template.write(
                &mut wire.wbuf,
                wire.remote_max_frame,
                next_delivery_id,
                u64::from(next_delivery_id),
                stamp,
            );
            next_delivery_id = next_delivery_id.wrapping_add(1);
            credit.delivery_count = credit.delivery_count.wrapping_add(1);
            wire.remote_incoming_window -= frames;
            wire.next_outgoing_id = wire.next_outgoing_id.wrapping_add(frames);
            allowed -= 1;
            produced += 1;
            if in_window {
                stats.sent += 1;
            }
            restamp -= 1;
            if restamp == 0 {
                // Re-stamp now and then: a batch takes a few microseconds to encode.
                restamp = RESTAMP_EVERY;
                stamp = now_ns();
            }
        }
        wire.write_available()?;
        if produced >= limit && wire.wbuf.is_empty() && (cfg.presettled || outcomes >= produced) {
            // Every message of a counted run was sent and has its outcome (and our settlements
            // are written).
            break;
        }
        if let Some(rate) = cfg.rate {
            // The next message is due at its slot in the schedule, whether or not the peer says anything
            // meanwhile (presettled traffic gets no dispositions to wake us).
            due = due.min(paced_from + Duration::from_secs_f64((produced + 1) as f64 / rate));
        }
        let can_produce =
            allowed > 0 && credit.available() > 0 && wire.remote_incoming_window >= frames;
        if wire.wbuf.is_empty() && can_produce {
            // More to send right away: let the other tasks run first.
            tokio::task::yield_now().await;
            continue;
        }
        wire.wait(due).await?;
    }
    wire.close().await;
    Ok(stats)
}

/// How many more unsettled messages a sender holding at most `max` without an outcome may send.
fn in_flight_room(max: u64, produced: u64, outcomes: u64) -> u64 {
    max.saturating_sub(produced.saturating_sub(outcomes))
}

/// Whether a disposition ends its deliveries: a terminal outcome, or settled without a state.
fn is_outcome(d: &Disposition) -> bool {
    d.state
        .as_ref()
        .map_or(d.settled, DeliveryState::is_outcome)
}

/// Settles our side of deliveries the peer gave an outcome without settling (a receiver in
/// mode `first` may leave that to us: RabbitMQ 3.x does), so neither side keeps their state.
fn settle(wire: &mut Wire, d: &Disposition) {
    if !is_outcome(d) {
        return;
    }
    wire.emit(&Performative::Disposition(Disposition {
        role: Role::Sender,
        first: d.first,
        last: d.last,
        settled: true,
        state: d.state.clone(),
        batchable: false,
    }));
}

fn on_flow(wire: &mut Wire, credit: &mut Credit, f: &Flow) {
    wire.on_session_flow(f);
    if f.handle != Some(0) {
        if f.echo {
            wire.flow(None);
        }
        return;
    }
    let their_count = f.delivery_count.unwrap_or(credit.delivery_count);
    credit.limit = their_count.wrapping_add(f.link_credit.unwrap_or(0));
    if f.drain {
        // Nothing is held back: everything with credit was sent, so use up the rest.
        credit.delivery_count = credit.limit;
    }
    if f.drain || f.echo {
        let mut flow = Flow {
            next_incoming_id: Some(wire.next_incoming_id),
            incoming_window: wire.incoming_window,
            next_outgoing_id: wire.next_outgoing_id,
            outgoing_window: u32::MAX,
            handle: Some(0),
            delivery_count: Some(credit.delivery_count),
            link_credit: Some(credit.available()),
            ..Flow::default()
        };
        flow.drain = f.drain;
        wire.emit(&Performative::Flow(flow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(settled: bool, state: Option<DeliveryState>) -> Disposition {
        Disposition {
            role: Role::Receiver,
            first: 3,
            last: Some(5),
            settled,
            state,
            batchable: false,
        }
    }

    #[test]
    fn in_flight_room_is_the_window_minus_what_awaits_an_outcome() {
        assert_eq!(in_flight_room(1000, 0, 0), 1000);
        assert_eq!(in_flight_room(1000, 1500, 600), 100);
        assert_eq!(in_flight_room(1000, 1000, 0), 0);
        // More outcomes than sent (a peer's mistake) must not overflow.
        assert_eq!(in_flight_room(10, 5, 9), 10);
    }

    #[test]
    fn outcomes_end_deliveries_and_received_does_not() {
        assert!(is_outcome(&disposition(
            true,
            Some(DeliveryState::Accepted)
        )));
        assert!(is_outcome(&disposition(
            false,
            Some(DeliveryState::Accepted)
        )));
        assert!(is_outcome(&disposition(
            false,
            Some(DeliveryState::Released)
        )));
        assert!(is_outcome(&disposition(true, None)));
        assert!(!is_outcome(&disposition(false, None)));
        assert!(!is_outcome(&disposition(
            false,
            Some(DeliveryState::Received {
                section_number: 0,
                section_offset: 0
            })
        )));
    }
}
