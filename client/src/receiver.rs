//! [`Receiver`]: a receiving link.

use shoal_amqp::{AmqpError, Attach, DeliveryState};
use tokio::sync::oneshot;

use crate::delivery::Received;
use crate::driver::Command;
use crate::error::{ClientError, Result};
use crate::link::LinkCore;

/// A receiving link. The peer may send as many deliveries as the credit we grant (with
/// [`flow`](Receiver::flow), or at attach); they queue here until [`recv`](Receiver::recv), so
/// the queue is bounded by the credit the caller chooses to give.
#[derive(Debug)]
pub struct Receiver {
    pub(crate) core: LinkCore,
}

impl Receiver {
    /// The source address: for a dynamic receiver, the one the peer assigned.
    pub fn address(&self) -> Option<&str> {
        self.core
            .remote_attach
            .source
            .as_ref()
            .and_then(|s| s.address.as_deref())
    }

    /// The peer's answering `attach`.
    pub fn remote_attach(&self) -> &Attach {
        &self.core.remote_attach
    }

    /// The next delivery. After the link ends, queued deliveries are still returned; then the
    /// reason (`Remote`, `Detached`, connection errors).
    pub async fn recv(&self) -> Result<Received> {
        let received = self
            .core
            .shared
            .wait(|s| {
                if let Some(r) = s.queue.pop_front() {
                    Some(Ok((r, s.auto_credit > 0 && Self::top_up_due(s))))
                } else {
                    s.terminal.clone().map(Err)
                }
            })
            .await;
        let (r, top_up) = received?;
        if top_up {
            // Best effort: if the queue is full, the next recv asks again.
            let asked = self
                .core
                .commands
                .try_send(Command::Replenish {
                    handle: self.core.handle,
                })
                .is_ok();
            self.core.shared.with(|s| s.replenish_asked = asked);
        }
        Ok(r)
    }

    /// Auto-replenish: ask for a top-up when credit plus queued deliveries fell to half.
    fn top_up_due(s: &mut crate::shared::LinkState) -> bool {
        let window = s.credit.saturating_add(s.queue.len() as u32);
        !s.replenish_asked && window <= s.auto_credit / 2
    }

    /// A delivery if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<Received> {
        self.core.shared.with(|s| s.queue.pop_front())
    }

    /// Deliveries received and not yet taken with `recv`.
    pub fn queued(&self) -> usize {
        self.core.shared.with(|s| s.queue.len())
    }

    /// Credit the peer still has.
    pub fn credit(&self) -> u32 {
        self.core.shared.with(|s| s.credit)
    }

    /// Grants `credit` more.
    pub async fn flow(&self, credit: u32) -> Result<()> {
        self.core
            .command(Command::Flow {
                handle: self.core.handle,
                credit,
                drain: false,
                reply: None,
            })
            .await
    }

    /// Asks the peer to use up or give back its credit; resolves when the credit is 0 and
    /// returns how many deliveries arrived meanwhile (they are queued for `recv`).
    pub async fn drain(&self) -> Result<u32> {
        let (reply, rx) = oneshot::channel();
        self.core
            .command(Command::Flow {
                handle: self.core.handle,
                credit: 0,
                drain: true,
                reply: Some(reply),
            })
            .await?;
        self.core.reply(rx).await
    }

    /// Settles with `accepted`.
    pub async fn accept(&self, d: &Received) -> Result<()> {
        self.settle(d, DeliveryState::Accepted).await
    }

    /// Settles with `rejected`.
    pub async fn reject(&self, d: &Received, error: Option<AmqpError>) -> Result<()> {
        self.settle(d, DeliveryState::Rejected { error }).await
    }

    /// Settles with `released`.
    pub async fn release(&self, d: &Received) -> Result<()> {
        self.settle(d, DeliveryState::Released).await
    }

    /// Settles with `modified`.
    pub async fn modify(
        &self,
        d: &Received,
        delivery_failed: bool,
        undeliverable_here: bool,
    ) -> Result<()> {
        let state = DeliveryState::Modified {
            delivery_failed: Some(delivery_failed),
            undeliverable_here: Some(undeliverable_here),
            message_annotations: None,
        };
        self.settle(d, state).await
    }

    /// Settles one delivery with `state`. A delivery that arrived settled needs no
    /// disposition: nothing is sent.
    pub async fn settle(&self, d: &Received, state: DeliveryState) -> Result<()> {
        if d.settled {
            return Ok(());
        }
        self.disposition(d.delivery_id, None, true, Some(state))
            .await
    }

    /// A raw disposition (role receiver) over `first..=last`, for tests of ranges and of
    /// unsettled states.
    pub async fn disposition(
        &self,
        first: u32,
        last: Option<u32>,
        settled: bool,
        state: Option<DeliveryState>,
    ) -> Result<()> {
        if let Some(e) = self.core.conn.error() {
            return Err(e);
        }
        self.core
            .command(Command::Disposition {
                first,
                last,
                settled,
                state,
            })
            .await
    }

    /// The error the peer detached this link with, if it did.
    pub fn detach_error(&self) -> Option<AmqpError> {
        self.core.detach_error()
    }

    /// Why the link can no longer be used, if it cannot.
    pub fn error(&self) -> Option<ClientError> {
        self.core.terminal()
    }

    /// Waits for the peer to detach the link: `Remote(error)` or `Detached`.
    pub async fn detached(&self) -> ClientError {
        self.core.detached().await
    }

    /// Detaches (`closed`: closes) the link and waits for the peer's detach; `Err(Remote)` if
    /// that carries an error.
    pub async fn detach(&self, closed: bool) -> Result<()> {
        self.core.detach(closed, None).await
    }

    /// `detach(true)`.
    pub async fn close(&self) -> Result<()> {
        self.detach(true).await
    }
}
