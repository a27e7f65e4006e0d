//! What a sender gets back ([`Delivery`]) and what a receiver gets ([`Received`]), plus the
//! [`Payload`] a send takes.

use std::sync::Arc;

use bytes::Bytes;
use shoal_amqp::{decode_message, DeliveryState, MessageBuilder};
use tokio::sync::oneshot;

use crate::error::{ClientError, Result};
use crate::shared::ConnShared;

/// The encoded bytes of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload(Bytes::from(b))
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Payload(Bytes::copy_from_slice(b))
    }
}

impl From<&MessageBuilder> for Payload {
    fn from(m: &MessageBuilder) -> Self {
        Payload(m.to_bytes())
    }
}

impl From<MessageBuilder> for Payload {
    fn from(m: MessageBuilder) -> Self {
        Payload(m.to_bytes())
    }
}

pub(crate) type OutcomeTx = oneshot::Sender<Result<DeliveryState>>;

/// A sent delivery. For an unsettled one, [`outcome`](Delivery::outcome) waits for the peer to
/// settle it.
#[derive(Debug)]
pub struct Delivery {
    pub(crate) tag: u64,
    pub(crate) outcome: Option<oneshot::Receiver<Result<DeliveryState>>>,
    pub(crate) conn: Arc<ConnShared>,
}

impl Delivery {
    /// The delivery tag (8 bytes on the wire, big-endian).
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Whether it was sent settled.
    pub fn is_settled(&self) -> bool {
        self.outcome.is_none()
    }

    /// The state the peer settled the delivery with. A settlement that carries no state
    /// reports `Accepted` (the default outcome). Fails with `Presettled` for a delivery sent
    /// settled, and with the link's or connection's error if it ends first.
    pub async fn outcome(self) -> Result<DeliveryState> {
        let Some(rx) = self.outcome else {
            return Err(ClientError::Presettled);
        };
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.conn.gone()),
        }
    }
}

/// A delivery received on a [`Receiver`](crate::Receiver).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub delivery_id: u32,
    pub delivery_tag: Bytes,
    pub message_format: u32,
    /// The peer sent it settled: no disposition is expected.
    pub settled: bool,
    /// The encoded message (every frame of a multi-frame delivery, joined).
    pub bytes: Bytes,
}

impl Received {
    /// Decodes the message.
    pub fn message(&self) -> Result<MessageBuilder> {
        Ok(decode_message(&self.bytes)?)
    }
}
