//! A receiver on raw frames, for what shoal-client's options do not cover: a source with terminus durability
//! and expiry-policy (durable subscriptions), capabilities (`shared`), and `distribution-mode: copy`.
//! One session, one link; single-frame messages.

use std::net::SocketAddr;

use bytes::Bytes;
use shoal_amqp::{
    Attach, DeliveryState, Detach, Disposition, Flow, Performative, ReceiverSettleMode, Role,
    SenderSettleMode, Source, Symbol, Target,
};
use shoal_client::{Connection, RawConnection};

pub struct RawReceiver {
    raw: RawConnection,
    /// The peer's next transfer id we expect (for our session flow).
    next_incoming: u32,
    /// Deliveries received on the link (its delivery-count, as we see it).
    received: u32,
}

/// What a test asks of the receiver's source.
#[derive(Default, Clone)]
pub struct SourceSpec {
    pub durable: bool,
    pub shared: bool,
    pub browse: bool,
    pub filter: Option<Vec<(Symbol, shoal_amqp::Value)>>,
}

pub fn source(address: &str, spec: &SourceSpec) -> Source {
    Source {
        address: Some(address.into()),
        durable: if spec.durable { 2 } else { 0 },
        expiry_policy: spec.durable.then(|| Symbol::from("never")),
        distribution_mode: spec.browse.then(|| Symbol::from("copy")),
        capabilities: spec.shared.then(|| vec![Symbol::from("shared")]),
        filter: spec.filter.clone(),
        ..Source::default()
    }
}

impl RawReceiver {
    /// Connect as `container_id` and attach receiver `link_name` on `address`. `Err` carries the refusal.
    pub async fn attach(
        addr: SocketAddr,
        container_id: &str,
        link_name: &str,
        address: &str,
        spec: &SourceSpec,
    ) -> Result<RawReceiver, String> {
        let mut raw = Connection::raw(addr).await.map_err(|e| e.to_string())?;
        raw.open(container_id).await.map_err(|e| e.to_string())?;
        let begin = raw.begin(0).await.map_err(|e| e.to_string())?;
        let attach = Attach {
            name: link_name.into(),
            handle: 0,
            role: Role::Receiver,
            snd_settle_mode: SenderSettleMode::Unsettled,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: Some(Box::new(source(address, spec))),
            target: Some(Box::new(Target::default())),
            ..Attach::default()
        };
        raw.send_frame(0, &Performative::Attach(attach), &[])
            .await
            .map_err(|e| e.to_string())?;
        match raw.next_performative().await {
            Some((_, Performative::Attach(a))) if a.source.is_some() => {}
            Some((_, Performative::Attach(_))) => {
                return match raw.next_performative().await {
                    Some((_, Performative::Detach(d))) => Err(format!("{:?}", d.error)),
                    other => Err(format!("refused: {other:?}")),
                }
            }
            other => return Err(format!("expected attach, got {other:?}")),
        }
        Ok(RawReceiver {
            raw,
            next_incoming: begin.next_outgoing_id,
            received: 0,
        })
    }

    /// Grant `credit` (from what was received so far).
    pub async fn flow(&mut self, credit: u32) {
        self.send_flow(credit, false).await;
    }

    /// A flow for the link, counted from what was received so far; the session part keeps a wide window.
    async fn send_flow(&mut self, credit: u32, drain: bool) {
        let flow = Flow {
            next_incoming_id: Some(self.next_incoming),
            incoming_window: 1 << 20,
            next_outgoing_id: 0,
            outgoing_window: 1 << 20,
            handle: Some(0),
            delivery_count: Some(self.received),
            link_credit: Some(credit),
            drain,
            ..Flow::default()
        };
        self.raw
            .send_frame(0, &Performative::Flow(flow), &[])
            .await
            .expect("flow sent");
    }

    /// The next delivery: (delivery id, settled, message bytes); `None` if none comes within the wait.
    pub async fn recv(&mut self) -> Option<(u32, bool, Bytes)> {
        loop {
            let frame = self.raw.next_frame().await?;
            match frame.performative {
                Some(Performative::Transfer(t)) => {
                    self.next_incoming = self.next_incoming.wrapping_add(1);
                    self.received = self.received.wrapping_add(1);
                    assert!(!t.more, "the raw receiver takes single-frame messages only");
                    let id = t.delivery_id.unwrap_or(0);
                    return Some((id, t.settled.unwrap_or(false), frame.payload));
                }
                Some(Performative::Detach(d)) => panic!("detached: {d:?}"),
                Some(Performative::Close(c)) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    pub async fn settle(&mut self, delivery_id: u32, state: DeliveryState) {
        let d = Disposition {
            role: Role::Receiver,
            first: delivery_id,
            last: None,
            settled: true,
            state: Some(state),
            batchable: false,
        };
        self.raw
            .send_frame(0, &Performative::Disposition(d), &[])
            .await
            .expect("disposition sent");
    }

    /// Receive `n` messages, accept each, return their texts.
    pub async fn take(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (id, settled, bytes) = self.recv().await.expect("a delivery");
            if !settled {
                self.settle(id, DeliveryState::Accepted).await;
            }
            out.push(body_text(&bytes));
        }
        out
    }

    /// Drain and expect nothing: the broker answers with a flow and no transfer.
    pub async fn assert_empty(&mut self) {
        self.send_flow(1, true).await;
        loop {
            let frame = self.raw.next_frame().await.expect("drain answered");
            match frame.performative {
                Some(Performative::Flow(f)) if f.handle == Some(0) => {
                    assert_eq!(f.link_credit, Some(0));
                    // The drain advanced the sender's delivery-count: later flows count from there.
                    self.received = f.delivery_count.unwrap_or(self.received);
                    return;
                }
                Some(Performative::Transfer(_)) => panic!("a delivery where none was expected"),
                _ => {}
            }
        }
    }

    /// Detach the link (`closed`: for good) and wait for the broker's detach.
    pub async fn detach(mut self, closed: bool) {
        let d = Detach {
            handle: 0,
            closed,
            error: None,
        };
        self.raw
            .send_frame(0, &Performative::Detach(d), &[])
            .await
            .expect("detach sent");
        loop {
            match self.raw.next_performative().await {
                Some((_, Performative::Detach(_))) | None => return,
                _ => {}
            }
        }
    }
}

pub fn body_text(bytes: &[u8]) -> String {
    match shoal_amqp::decode_message(bytes).expect("decodes").body {
        shoal_amqp::Body::Data(d) => String::from_utf8_lossy(&d).into_owned(),
        other => panic!("unexpected body {other:?}"),
    }
}
