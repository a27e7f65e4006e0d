//! A persistent session's side in the connection: resuming (subscriptions back, the queue drained first)
//! and what is saved when the connection ends.

use shoal_mqtt::QoS;
use shoal_router::core::api::Event;

use super::outbound::ReceiverLink;
use super::{Persist, Session};
use crate::mapping::SubscribeTarget;
use crate::persist::{SessionRecord, SubRecord};

impl Session {
    /// Take a kept session back: its subscriptions live again, and what its queue holds comes first.
    pub(super) fn resume(&mut self, r: SessionRecord) {
        for sub in &r.subscriptions {
            let qos = QoS::from_u8(sub.qos).unwrap_or(QoS::AtLeastOnce);
            self.subscribe_one(&sub.filter, qos);
        }
        let local = self.new_local();
        let req = self.request(local, Some(r.queue.clone()), false, false);
        self.events.push(Event::AttachOutgoing(req));
        self.receivers.insert(
            local,
            ReceiverLink {
                key: None,
                // The queue's messages name their topics in `to`; `#` accepts every one of them.
                target: SubscribeTarget::Plain {
                    pattern: r.queue.clone(),
                },
                filter: "#".into(),
                qos: QoS::AtLeastOnce,
                delivery_count: 0,
                limit: 0,
                partial: None,
                unsubscribed: false,
            },
        );
        self.stored = Some(local);
        self.draining = true;
    }

    /// The session queue is empty: the live deliveries held meanwhile follow.
    pub(super) fn drained(&mut self) {
        if self.draining {
            self.draining = false;
            self.queue.extend(self.held.drain(..));
        }
    }

    /// Tell the session table about changed subscriptions (for a take-over).
    pub(super) fn sync_session(&self) {
        if let (Some(sessions), Some(p)) = (&self.shared.persistent, &self.persist) {
            sessions.update(p.owner, self.session_record(p));
        }
    }

    /// What outlives this connection: the plain subscriptions (command subscriptions are not kept).
    pub(super) fn session_record(&self, p: &Persist) -> SessionRecord {
        let mut subscriptions: Vec<SubRecord> = self
            .subs
            .iter()
            .filter_map(|(filter, local)| {
                let r = self.receivers.get(local)?;
                match &r.target {
                    SubscribeTarget::Plain { pattern } => Some(SubRecord {
                        filter: filter.clone(),
                        pattern: pattern.clone(),
                        qos: r.qos as u8,
                    }),
                    // Command subscriptions (a device's, a gateway's) are not kept.
                    _ => None,
                }
            })
            .collect();
        subscriptions.sort_by(|a, b| a.filter.cmp(&b.filter));
        SessionRecord {
            key: p.key.clone(),
            queue: p.queue.clone(),
            subscriptions,
            expiry_secs: p.expiry_secs,
            parked_at_ms: None,
        }
    }
}
