//! Hono's `command/TENANT` link form: an application sends commands on one link to `command/TENANT`, each
//! message's `to` naming its device (`command/TENANT/DEVICE`). The core routes a named link by its address,
//! not by `to`, so those messages land on `command/TENANT`, where no device listens (devices receive on
//! `command/TENANT/DEVICE`). This relay, one adaptor connection per gateway, closes the gap the way Hono's
//! command router does: a pattern receiver on `command/*` (every tenant's command address, never a device's,
//! which has one more segment) takes each message and sends it on, unchanged, on an anonymous link with its
//! `to`; the device's outcome goes back to the application as the outcome of the original.
//!
//! Why here and not in the core: "a named link's message may be rerouted by its `to`" would be a new routing
//! rule for every address; this keeps it to Hono's one address shape, in the crate that speaks Hono.
//!
//! A message whose `to` is not `command/TENANT/DEVICE` of the link's own tenant is *released* (not rejected):
//! the relay is one of possibly several consumers of the address (an AMQP application may use `command/x` for
//! something else), and a rejection from it would override their outcome. Tenant ids with a `.` do not match
//! `command/*` (the core also splits segments at `.`): their applications address devices directly.
//!
//! Bounded: the relay's credit on the pattern receiver ([`CREDIT`]) bounds what it holds; a unit comes back
//! when the forwarded message is settled.

use std::collections::{HashMap, VecDeque};

use shoal_amqp::{decode_message, DeliveryState, SenderSettleMode, Source, Target};
use shoal_router::adaptor::AdaptorConnection;
use shoal_router::core::api::{
    AttachDetails, AttachRequest, Command, DeliveryKey, Event, LinkKey, LocalLink, Msg,
};
use shoal_router::RouterHandle;
use tokio::sync::watch;

use crate::convert;
use crate::credit::SenderCredit;

/// Commands the relay holds at once (received and not yet settled by their device).
const CREDIT: u32 = 256;
/// The core pattern of every tenant's command address.
const PATTERN: &str = "command/*";

const SENDER: LocalLink = 0;
const RECEIVER: LocalLink = 1;

/// Join the router and ask for the relay's links, then run it in a task until `stopped` says so (or the
/// gateway, holding its sender, goes away).
pub(crate) async fn start(router: RouterHandle, stopped: watch::Receiver<bool>) {
    let conn = match router.open_adaptor_connection().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the command relay could not join the router");
            return;
        }
    };
    let attach = vec![
        Event::AttachIncoming(request(SENDER, None, false)),
        Event::AttachOutgoing(request(RECEIVER, Some(PATTERN.into()), true)),
    ];
    if conn.send(attach).await.is_err() {
        return;
    }
    tokio::spawn(run(conn, stopped));
}

async fn run(conn: AdaptorConnection, mut stopped: watch::Receiver<bool>) {
    let mut r = Relay::default();
    let mut commands = Vec::new();
    loop {
        if conn.send(std::mem::take(&mut r.events)).await.is_err() {
            return;
        }
        if r.gone {
            tracing::warn!(
                "the command relay lost a link: commands sent to command/TENANT are not relayed"
            );
            return;
        }
        tokio::select! {
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    return;
                }
            }
            _ = conn.outbox().notified() => {
                conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    r.on_command(c);
                }
                r.pump();
            }
        }
    }
}

fn request(local: LocalLink, address: Option<String>, outgoing: bool) -> AttachRequest {
    let (source, target) = if outgoing {
        let s = Source {
            address: address.clone(),
            ..Source::default()
        };
        (s, Target::default())
    } else {
        (Source::default(), Target::default())
    };
    AttachRequest {
        local,
        address,
        dynamic: false,
        pattern: outgoing,
        details: Box::new(AttachDetails {
            link_name: format!("mqtt-command-relay:{local}"),
            container_id: "shoal-mqtt-gateway".into(),
            source: Some(Box::new(source)),
            target: Some(Box::new(target)),
            snd_settle_mode: SenderSettleMode::Mixed,
            ..AttachDetails::default()
        }),
    }
}

#[derive(Default)]
struct Relay {
    events: Vec<Event>,
    receiver: Option<LinkKey>,
    limit: u32,
    partial: Option<(Option<DeliveryKey>, Msg, Option<std::sync::Arc<str>>)>,
    sender: Option<LinkKey>,
    credit: SenderCredit,
    /// Waiting for sender credit: (upstream delivery, message, `to`).
    pending: VecDeque<(Option<DeliveryKey>, Msg, String)>,
    /// Forwarded, not settled yet: our delivery id -> the upstream delivery.
    forwarded: HashMap<u32, DeliveryKey>,
    next_id: u32,
    /// A link was refused or detached: the relay ends.
    gone: bool,
}

impl Relay {
    fn on_command(&mut self, c: Command) {
        if self.credit.on_command(SENDER, &c) {
            return;
        }
        match c {
            Command::Attached { local, link, .. } if local == SENDER => self.sender = Some(link),
            Command::Attached { link, .. } => {
                self.receiver = Some(link);
                self.limit = CREDIT;
                self.events.push(Event::Credit {
                    link,
                    limit: self.limit,
                    drain: false,
                });
            }
            Command::Settle {
                delivery_id, state, ..
            } => {
                if let Some(upstream) = self.forwarded.remove(&delivery_id) {
                    self.settle_upstream(upstream, state);
                }
            }
            Command::Deliver {
                delivery,
                msg,
                more,
                address,
                ..
            } => self.deliver(delivery, msg, more, address),
            Command::DeliverMore {
                msg, more, aborted, ..
            } => {
                let Some((delivery, mut whole, address)) = self.partial.take() else {
                    return;
                };
                if aborted {
                    self.credit_back();
                    return;
                }
                if let Some(part) = msg {
                    whole.append(part);
                }
                self.deliver(delivery, whole, more, address);
            }
            Command::Refused { local, error } => {
                tracing::warn!(local, error = ?error, "command relay link refused");
                self.gone = true;
            }
            Command::Detach { .. } => self.gone = true,
            _ => {}
        }
    }

    fn deliver(
        &mut self,
        delivery: Option<DeliveryKey>,
        msg: Msg,
        more: bool,
        address: Option<std::sync::Arc<str>>,
    ) {
        if more {
            self.partial = Some((delivery, msg, address));
            return;
        }
        let to = decode_message(&convert::joined(&msg.chunks))
            .ok()
            .and_then(|m| m.to)
            .filter(|to| address.as_deref().is_some_and(|a| is_device_of(to, a)));
        match to {
            Some(to) => self.pending.push_back((delivery, msg, to)),
            None => {
                if let Some(d) = delivery {
                    self.settle_upstream(d, DeliveryState::Released);
                } else {
                    self.credit_back();
                }
            }
        }
    }

    /// Forward what waits, as far as the anonymous sender's credit goes.
    fn pump(&mut self) {
        let Some(sender) = self.sender else { return };
        while self.credit.available() {
            let Some((delivery, msg, to)) = self.pending.pop_front() else {
                return;
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.credit.spend();
            match delivery {
                Some(d) => {
                    self.forwarded.insert(id, d);
                }
                // Presettled upstream: nothing to wait for.
                None => self.credit_back(),
            }
            self.events.push(Event::Transfer {
                link: sender,
                delivery_id: id,
                settled: delivery.is_none(),
                to: Some(to),
                msg,
                more: false,
            });
        }
    }

    fn settle_upstream(&mut self, delivery: DeliveryKey, state: DeliveryState) {
        self.events.push(Event::Outcome {
            link: self.receiver,
            delivery,
            state,
        });
        self.credit_back();
    }

    fn credit_back(&mut self) {
        if let Some(link) = self.receiver {
            self.limit = self.limit.wrapping_add(1);
            self.events.push(Event::Credit {
                link,
                limit: self.limit,
                drain: false,
            });
        }
    }
}

/// Whether `to` names a device of the tenant whose command address is `address` (`command/TENANT`).
fn is_device_of(to: &str, address: &str) -> bool {
    let Some(tenant) = address.strip_prefix("command/") else {
        return false;
    };
    if tenant.is_empty() || tenant.contains('/') {
        return false;
    }
    to.strip_prefix(address)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|device| !device.is_empty() && !device.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::is_device_of;

    #[test]
    fn only_a_device_of_the_links_own_tenant_is_relayed() {
        assert!(is_device_of("command/acme/d1", "command/acme"));
        assert!(is_device_of("command/acme/dev.1", "command/acme"));
        assert!(!is_device_of("command/acme", "command/acme"));
        assert!(!is_device_of("command/acme/", "command/acme"));
        assert!(!is_device_of("command/acme/a/b", "command/acme"));
        assert!(!is_device_of("command/other/d1", "command/acme"));
        assert!(!is_device_of("command/acmex/d1", "command/acme"));
        assert!(!is_device_of("other/acme/d1", "other/acme"));
    }
}
