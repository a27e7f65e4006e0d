//! The keeper of an offline persistent session: it holds the session's subscriptions on an adaptor
//! connection of its own and moves every QoS 1 message they receive into the session's broker queue.
//!
//! A message is accepted upstream only once the broker settled it *accepted* (stored), so a publisher's
//! PUBACK still means "kept". QoS 0 messages (presettled) are not kept, as MQTT allows. The keeper's credit on
//! each subscription is the session's in-flight bound: while the broker is slow, the subscriptions fill up and
//! the core applies its usual back-pressure.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use shoal_amqp::{decode_message, DeliveryState, Header, SenderSettleMode, Source, Target};
use shoal_router::core::api::{
    AttachDetails, AttachRequest, Command, DeliveryKey, Event, LinkKey, LocalLink, Msg,
};
use shoal_router::RouterHandle;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::record::SessionRecord;
use crate::credit::SenderCredit;
use crate::{convert, mapping};

/// How a keeper ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    /// Told to stop (the client is back, or the gateway stops).
    Stopped,
    /// The session expired.
    Expired,
}

/// A running keeper: stop it and wait until what it forwarded is settled.
pub(super) struct Handle {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Exit>,
    ready: Arc<AtomicBool>,
}

impl Handle {
    /// Whether it holds the session's subscriptions now.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// Start keeping `record`; `ready` fires once its subscriptions are attached (or it gave up on them).
pub(super) fn spawn(
    router: RouterHandle,
    record: SessionRecord,
    inflight: u32,
    deadline: Option<Instant>,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> (Handle, oneshot::Receiver<()>) {
    let (stop, stopped) = oneshot::channel();
    let (ready_tx, ready) = oneshot::channel();
    let flag = Arc::new(AtomicBool::new(false));
    let ready_tx = (ready_tx, Arc::clone(&flag));
    let done = tokio::spawn(async move {
        let exit = match run(router, &record, inflight, deadline, stopped, ready_tx).await {
            Ok(exit) => exit,
            Err(e) => {
                tracing::warn!(session = %record.key, error = %e, "session keeper failed");
                Exit::Stopped
            }
        };
        on_exit(exit);
        exit
    });
    let handle = Handle {
        stop,
        done,
        ready: flag,
    };
    (handle, ready)
}

const SENDER: LocalLink = 0;

struct Sub {
    key: Option<LinkKey>,
    filter: String,
    limit: u32,
    /// A delivery arriving in parts, with the address the core routed it by.
    partial: Option<(Option<DeliveryKey>, Msg, Option<Arc<str>>)>,
}

struct Keeper {
    queue: String,
    session: String,
    inflight: u32,
    sender: Option<LinkKey>,
    credit: SenderCredit,
    subs: HashMap<LocalLink, Sub>,
    /// Waiting for sender credit: (subscription link, upstream delivery, message for the queue).
    pending: VecDeque<(LocalLink, LinkKey, DeliveryKey, Msg)>,
    /// Sent to the queue, not settled yet: delivery id -> where it came from.
    forwarded: HashMap<u32, (LocalLink, LinkKey, DeliveryKey)>,
    next_id: u32,
    events: Vec<Event>,
    ready: Option<(oneshot::Sender<()>, Arc<AtomicBool>)>,
    retry_at: Option<Instant>,
}

async fn run(
    router: RouterHandle,
    record: &SessionRecord,
    inflight: u32,
    deadline: Option<Instant>,
    mut stopped: oneshot::Receiver<()>,
    ready: (oneshot::Sender<()>, Arc<AtomicBool>),
) -> Result<Exit, shoal_router::HandleError> {
    let conn = router.open_adaptor_connection().await?;
    let mut k = Keeper {
        queue: record.queue.clone(),
        session: record.key.clone(),
        inflight: inflight.max(1),
        sender: None,
        credit: SenderCredit::default(),
        subs: HashMap::new(),
        pending: VecDeque::new(),
        forwarded: HashMap::new(),
        next_id: 0,
        events: Vec::new(),
        ready: Some(ready),
        retry_at: None,
    };
    // QoS 0 subscriptions keep nothing while the client is away: they need no link.
    for (i, s) in record
        .subscriptions
        .iter()
        .filter(|s| s.qos > 0)
        .enumerate()
    {
        let local = i as LocalLink + 1;
        k.subs.insert(
            local,
            Sub {
                key: None,
                filter: s.filter.clone(),
                limit: 0,
                partial: None,
            },
        );
    }
    let patterns: HashMap<LocalLink, String> = record
        .subscriptions
        .iter()
        .filter(|s| s.qos > 0)
        .enumerate()
        .map(|(i, s)| (i as LocalLink + 1, s.pattern.clone()))
        .collect();
    if k.subs.is_empty() {
        k.signal_ready();
    }
    k.attach_sender();
    let mut commands = Vec::new();
    let exit = loop {
        conn.send(std::mem::take(&mut k.events)).await?;
        let retry = k.retry_at;
        tokio::select! {
            _ = &mut stopped => break Exit::Stopped,
            _ = sleep_until(deadline) => break Exit::Expired,
            _ = sleep_until(retry), if retry.is_some() => {
                k.retry_at = None;
                k.attach_sender();
            }
            _ = conn.outbox().notified() => {
                conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    k.on_command(c, &patterns);
                }
                k.pump();
            }
        }
    };
    // Stop receiving, give back what was not forwarded, and wait (bounded) for the broker to settle what
    // was: accepting those upstream is what makes them safe.
    k.stop_receiving();
    conn.send(std::mem::take(&mut k.events)).await?;
    let settle_by = Instant::now() + Duration::from_secs(5);
    while !k.forwarded.is_empty() && k.sender.is_some() {
        tokio::select! {
            _ = tokio::time::sleep_until(settle_by) => break,
            _ = conn.outbox().notified() => {
                conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    k.on_command(c, &patterns);
                }
            }
        }
        conn.send(std::mem::take(&mut k.events)).await?;
    }
    Ok(exit)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Keeper {
    fn details(&self, local: LocalLink, address: &str, incoming: bool) -> Box<AttachDetails> {
        let (source, target) = if incoming {
            let t = Target {
                address: Some(address.to_owned()),
                ..Target::default()
            };
            (Source::default(), t)
        } else {
            let s = Source {
                address: Some(address.to_owned()),
                ..Source::default()
            };
            (s, Target::default())
        };
        Box::new(AttachDetails {
            link_name: format!("mqtt-keeper:{}:{local}", self.session),
            container_id: "shoal-mqtt-gateway".into(),
            source: Some(Box::new(source)),
            target: Some(Box::new(target)),
            snd_settle_mode: SenderSettleMode::Mixed,
            ..AttachDetails::default()
        })
    }

    fn attach_sender(&mut self) {
        let details = self.details(SENDER, &self.queue, true);
        self.events.push(Event::AttachIncoming(AttachRequest {
            local: SENDER,
            address: Some(self.queue.clone()),
            dynamic: false,
            pattern: false,
            details,
        }));
    }

    fn signal_ready(&mut self) {
        if let Some((tx, flag)) = self.ready.take() {
            flag.store(true, Ordering::Release);
            let _ = tx.send(());
        }
    }

    fn on_command(&mut self, c: Command, patterns: &HashMap<LocalLink, String>) {
        if self.credit.on_command(SENDER, &c) {
            return;
        }
        match c {
            Command::Attached { local, link, .. } if local == SENDER => {
                let first = self.sender.is_none() && self.subs.values().all(|s| s.key.is_none());
                self.sender = Some(link);
                // Subscribe only once the queue is there: nothing is taken that could not be kept.
                if first {
                    for (local, pattern) in patterns {
                        let details = self.details(*local, pattern, false);
                        self.events.push(Event::AttachOutgoing(AttachRequest {
                            local: *local,
                            address: Some(pattern.clone()),
                            dynamic: false,
                            pattern: true,
                            details,
                        }));
                    }
                }
            }
            Command::Attached { local, link, .. } => {
                if let Some(s) = self.subs.get_mut(&local) {
                    s.key = Some(link);
                    s.limit = self.inflight;
                    self.events.push(Event::Credit {
                        link,
                        limit: s.limit,
                        drain: false,
                    });
                }
                if self.subs.values().all(|s| s.key.is_some()) {
                    self.signal_ready();
                }
            }
            Command::Refused { local, error } => {
                tracing::warn!(session = %self.session, local, error = ?error, "session keeper link refused");
                if local == SENDER {
                    // The broker may not be connected yet (gateway start): try again shortly.
                    self.retry_at = Some(Instant::now() + Duration::from_millis(500));
                } else {
                    self.subs.remove(&local);
                    if self.subs.values().all(|s| s.key.is_some()) {
                        self.signal_ready();
                    }
                }
            }
            Command::Settle {
                delivery_id, state, ..
            } => {
                if let Some((sub, link, delivery)) = self.forwarded.remove(&delivery_id) {
                    let state = match state {
                        DeliveryState::Accepted => DeliveryState::Accepted,
                        // Not stored: the publisher must not be told it was.
                        _ => DeliveryState::Released,
                    };
                    self.events.push(Event::Outcome {
                        link: Some(link),
                        delivery,
                        state,
                    });
                    self.credit_back(sub);
                }
            }
            Command::Deliver {
                local,
                delivery,
                msg,
                more,
                address,
            } => self.deliver(local, delivery, Some(msg), more, address),
            Command::DeliverMore {
                local,
                msg,
                more,
                aborted,
            } => {
                if aborted {
                    if let Some(s) = self.subs.get_mut(&local) {
                        s.partial = None;
                    }
                    self.credit_back(local);
                } else if let Some(s) = self.subs.get_mut(&local) {
                    if let Some((d, whole, address)) = s.partial.take() {
                        let whole = match msg {
                            Some(part) => merge(whole, part),
                            None => whole,
                        };
                        self.deliver(local, d, Some(whole), more, address);
                    }
                }
            }
            Command::Detach { local, .. } if local == SENDER => {
                // The broker went away: what it did not settle is given back, and we attach again.
                self.sender = None;
                self.credit.reset();
                for (_, (sub, link, delivery)) in std::mem::take(&mut self.forwarded) {
                    self.release(link, delivery);
                    self.credit_back(sub);
                }
                self.retry_at = Some(Instant::now() + Duration::from_millis(500));
            }
            Command::Detach { local, .. } => {
                self.subs.remove(&local);
            }
            _ => {}
        }
    }

    fn deliver(
        &mut self,
        local: LocalLink,
        delivery: Option<DeliveryKey>,
        msg: Option<Msg>,
        more: bool,
        address: Option<Arc<str>>,
    ) {
        let Some(s) = self.subs.get_mut(&local) else {
            if let Some(d) = delivery {
                self.events.push(Event::Outcome {
                    link: None,
                    delivery: d,
                    state: DeliveryState::Released,
                });
            }
            return;
        };
        let Some(msg) = msg else { return };
        if more {
            s.partial = Some((delivery, msg, address));
            return;
        }
        let (Some(delivery), Some(link)) = (delivery, s.key) else {
            // Presettled: published at QoS 0, which an offline session does not keep.
            self.credit_back(local);
            return;
        };
        match for_queue(&msg, &s.filter, address.as_deref()) {
            Some(m) => self.pending.push_back((local, link, delivery, m)),
            None => {
                self.events.push(Event::Outcome {
                    link: Some(link),
                    delivery,
                    state: DeliveryState::Rejected { error: None },
                });
                self.credit_back(local);
            }
        }
    }

    fn pump(&mut self) {
        let Some(sender) = self.sender else { return };
        while self.credit.available() {
            let Some((sub, link, delivery, msg)) = self.pending.pop_front() else {
                return;
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.credit.spend();
            self.forwarded.insert(id, (sub, link, delivery));
            self.events.push(Event::Transfer {
                link: sender,
                delivery_id: id,
                settled: false,
                to: None,
                msg,
                more: false,
            });
        }
    }

    fn credit_back(&mut self, local: LocalLink) {
        if let Some(Sub {
            key: Some(key),
            limit,
            ..
        }) = self.subs.get_mut(&local)
        {
            *limit = limit.wrapping_add(1);
            self.events.push(Event::Credit {
                link: *key,
                limit: *limit,
                drain: false,
            });
        }
    }

    fn release(&mut self, link: LinkKey, delivery: DeliveryKey) {
        self.events.push(Event::Outcome {
            link: Some(link),
            delivery,
            state: DeliveryState::Released,
        });
    }

    fn stop_receiving(&mut self) {
        for (link, delivery) in self
            .pending
            .drain(..)
            .map(|(_, l, d, _)| (l, d))
            .collect::<Vec<_>>()
        {
            self.release(link, delivery);
        }
        for (_, s) in self.subs.drain() {
            if let Some(key) = s.key {
                self.events.push(Event::Detach {
                    link: key,
                    error: None,
                    closed: true,
                });
            }
        }
    }
}

fn merge(mut whole: Msg, part: Msg) -> Msg {
    whole.append(part);
    whole
}

/// The message as the queue keeps it: durable (the broker writes it to disk), and with `to` naming its
/// topic, which is how the session finds the topic again when it delivers it. The topic is chosen as a live
/// subscription chooses it (`mapping::delivery_topic`): the message's `to`, else the `address` the core
/// matched, else the exact filter. `None` when there is none (the delivery is then rejected).
fn for_queue(msg: &Msg, filter: &str, address: Option<&str>) -> Option<Msg> {
    let mut m = decode_message(&convert::joined(&msg.chunks)).ok()?;
    let mut header = m.header.take().unwrap_or_else(Header::default);
    header.durable = true;
    m.header = Some(header);
    let topic = mapping::delivery_topic(m.to.as_deref(), address, filter)?.to_owned();
    if m.to.as_deref() != Some(topic.as_str()) {
        m.to = Some(topic);
    }
    let mut buf = BytesMut::new();
    m.encode(&mut buf);
    Some(Msg::untracked(shoal_router::core::api::Chunks::One(
        buf.freeze(),
    )))
}
