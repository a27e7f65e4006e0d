//! Session queues declared in a broker the gateway reaches only over AMQP: in `shoal mqtt-gateway` (an edge
//! router, the broker behind an interior) and in `shoal router --broker` (the broker in its own process).
//!
//! The broker's queue-management node (`$shoal/queues`, see `shoal_broker::manage`) takes one request per
//! message (application properties `operation` = `declare` | `delete` and `address`) and answers with the
//! outcome: *accepted* once the change is stored. The gateway link-routes that address to the broker with an
//! address rule of its own, so the request travels the same way as the session queues' links, hop by hop
//! through the mesh (ADR 0009). One adaptor connection carries one sender for every session; requests are
//! pipelined up to the broker's credit, each waiting for its own outcome.
//!
//! While the broker cannot be reached (not connected yet, restarting, a mesh link down) the requests fail at
//! once when the router refuses the sender, else after [`REQUEST_TIMEOUT`]; one whose link was lost before its
//! outcome came fails at once too, and the sender is attached again after [`RETRY`]. The caller decides (a client asking for a persistent session is told the server
//! is unavailable). Both operations are idempotent, so a caller may simply retry.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use shoal_amqp::{MessageBuilder, SenderSettleMode, Source, Target, Value};
use shoal_router::adaptor::AdaptorConnection;
use shoal_router::config::{AddressRule, Distribution, Matcher};
use shoal_router::core::api::{
    AttachDetails, AttachRequest, Chunks, Command, Event, LinkKey, LocalLink, Msg,
};
use shoal_router::RouterHandle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{BoxFuture, SessionQueues};
use crate::credit::SenderCredit;

/// The broker's queue-management node and its request fields (`shoal_broker::manage`; the gateway does not
/// depend on the broker crate, a test in `tests/gateway/sessions.rs` checks they agree).
pub const MANAGE_ADDRESS: &str = "$shoal/queues";
const OPERATION: &str = "operation";
const ADDRESS: &str = "address";

/// The name of the address rule that link-routes the management node to the broker.
pub const MANAGE_RULE: &str = "shoal-system/broker-queues";

/// How long a request may wait for the broker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon a refused or lost sender is attached again.
const RETRY: Duration = Duration::from_millis(500);
/// Requests waiting for the task at most (callers beyond wait for room: back-pressure, not loss).
const QUEUE: usize = 256;

const SENDER: LocalLink = 0;

/// [`SessionQueues`] on a broker reached over AMQP, through the router.
pub struct BrokerQueues {
    requests: mpsc::Sender<Request>,
}

struct Request {
    operation: &'static str,
    address: String,
    reply: oneshot::Sender<Result<(), String>>,
}

impl BrokerQueues {
    /// Link-route the management node to the route container `broker`, and start the task that talks to it.
    pub async fn start(router: RouterHandle, broker: &str) -> Result<BrokerQueues, crate::Error> {
        router
            .set_address(AddressRule {
                name: MANAGE_RULE.into(),
                matcher: Matcher::Exact(MANAGE_ADDRESS.into()),
                distribution: Distribution::Balanced,
                link_route: Some(broker.to_owned()),
            })
            .await?;
        let conn = router.open_adaptor_connection().await?;
        let (requests, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, rx));
        Ok(BrokerQueues { requests })
    }

    async fn request(&self, operation: &'static str, address: &str) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            operation,
            address: address.to_owned(),
            reply,
        };
        let asked = async {
            self.requests
                .send(request)
                .await
                .map_err(|_| "the gateway is stopping".to_owned())?;
            answer
                .await
                .map_err(|_| "the gateway is stopping".to_owned())?
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, asked).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the broker did not answer within {}s (is it connected?)",
                REQUEST_TIMEOUT.as_secs()
            )),
        }
    }
}

impl SessionQueues for BrokerQueues {
    fn ensure<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.request("declare", address))
    }

    fn delete<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.request("delete", address))
    }
}

#[derive(Default)]
struct Manager {
    events: Vec<Event>,
    /// The sender, once the broker attached it.
    sender: Option<LinkKey>,
    /// An attach is on its way.
    attaching: bool,
    retry_at: Option<Instant>,
    credit: SenderCredit,
    /// Waiting for the sender or its credit.
    waiting: VecDeque<Request>,
    /// Sent, outcome not known yet: delivery id -> the caller.
    sent: HashMap<u32, oneshot::Sender<Result<(), String>>>,
    next_id: u32,
}

async fn run(conn: AdaptorConnection, mut requests: mpsc::Receiver<Request>) {
    let mut m = Manager::default();
    let mut commands = Vec::new();
    loop {
        // Callers that gave up (timed out) need nothing sent for them.
        m.waiting.retain(|r| !r.reply.is_closed());
        if !m.waiting.is_empty() && m.sender.is_none() && !m.attaching && m.retry_at.is_none() {
            m.attach();
        }
        m.pump();
        if conn.send(std::mem::take(&mut m.events)).await.is_err() {
            return;
        }
        let retry = m.retry_at;
        tokio::select! {
            request = requests.recv(), if m.waiting.len() < QUEUE => match request {
                Some(r) => m.waiting.push_back(r),
                None => return,
            },
            _ = sleep_until(retry), if retry.is_some() => m.retry_at = None,
            _ = conn.outbox().notified() => {
                conn.outbox().take(&mut commands);
                for c in commands.drain(..) {
                    m.on_command(c);
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Manager {
    fn attach(&mut self) {
        self.attaching = true;
        let target = Target {
            address: Some(MANAGE_ADDRESS.into()),
            ..Target::default()
        };
        self.events.push(Event::AttachIncoming(AttachRequest {
            local: SENDER,
            address: Some(MANAGE_ADDRESS.into()),
            dynamic: false,
            pattern: false,
            details: Box::new(AttachDetails {
                link_name: "mqtt-session-queues".into(),
                container_id: "shoal-mqtt-gateway".into(),
                source: Some(Box::new(Source::default())),
                target: Some(Box::new(target)),
                snd_settle_mode: SenderSettleMode::Unsettled,
                ..AttachDetails::default()
            }),
        }));
    }

    /// The sender is gone (refused or detached): what was sent has no answer; attach again later.
    fn lost(&mut self, why: &str) {
        self.sender = None;
        self.attaching = false;
        self.credit.reset();
        self.retry_at = Some(Instant::now() + RETRY);
        for (_, reply) in self.sent.drain() {
            let _ = reply.send(Err(format!(
                "the link to the broker was lost before it answered: {why}"
            )));
        }
    }

    fn on_command(&mut self, c: Command) {
        if self.credit.on_command(SENDER, &c) {
            return;
        }
        match c {
            Command::Attached { link, .. } => {
                self.sender = Some(link);
                self.attaching = false;
            }
            Command::Settle {
                delivery_id, state, ..
            } => {
                if let Some(reply) = self.sent.remove(&delivery_id) {
                    let result = match state {
                        shoal_amqp::DeliveryState::Accepted => Ok(()),
                        shoal_amqp::DeliveryState::Rejected { error: Some(e) } => {
                            Err(e.description.unwrap_or(e.condition.0))
                        }
                        other => Err(format!("the broker answered {other:?}")),
                    };
                    let _ = reply.send(result);
                }
            }
            Command::Refused { error, .. } => {
                let why = error.description.unwrap_or(error.condition.0);
                tracing::debug!(error = %why, "the broker's queue-management node refused the link");
                self.lost(&why);
                // Nothing can be sent now (the broker is not reachable from here): say so at once rather
                // than at the timeout.
                for r in self.waiting.drain(..) {
                    let _ = r
                        .reply
                        .send(Err(format!("the broker cannot be reached: {why}")));
                }
            }
            Command::Detach { error, .. } => {
                let why = error
                    .and_then(|e| e.description)
                    .unwrap_or_else(|| "detached".into());
                self.lost(&why);
            }
            _ => {}
        }
    }

    /// Send what waits, as far as the sender's credit goes.
    fn pump(&mut self) {
        let Some(link) = self.sender else { return };
        while self.credit.available() {
            let Some(request) = self.waiting.pop_front() else {
                return;
            };
            if request.reply.is_closed() {
                continue;
            }
            let body = MessageBuilder {
                application_properties: vec![
                    (OPERATION.into(), Value::String(request.operation.into())),
                    (ADDRESS.into(), Value::String(request.address)),
                ],
                ..MessageBuilder::default()
            }
            .to_bytes();
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.credit.spend();
            self.sent.insert(id, request.reply);
            self.events.push(Event::Transfer {
                link,
                delivery_id: id,
                settled: false,
                to: None,
                msg: Msg::untracked(Chunks::One(body)),
                more: false,
            });
        }
    }
}
