//! [`Sender`]: a sending link.

use shoal_amqp::{AmqpError, Attach};
use tokio::sync::oneshot;

use crate::delivery::{Delivery, Payload};
use crate::driver::Command;
use crate::error::{ClientError, Result};
use crate::link::LinkCore;

/// A sending link. Sends are pipelined: `send` returns as soon as the transfer is queued for
/// the connection task, so any number of deliveries can be in flight; their outcomes arrive
/// through each [`Delivery`].
#[derive(Debug)]
pub struct Sender {
    pub(crate) core: LinkCore,
}

impl Sender {
    /// The link credit the peer has granted and we have not used.
    pub fn credit(&self) -> u32 {
        self.core.shared.with(|s| s.send_credit())
    }

    /// Waits until at least `n` credit is available. Fails if the link or connection ends.
    pub async fn wait_credit(&self, n: u32) -> Result<()> {
        self.core
            .shared
            .wait(|s| {
                if let Some(e) = &s.terminal {
                    Some(Err(e.clone()))
                } else if s.send_credit() >= n {
                    Some(Ok(()))
                } else {
                    None
                }
            })
            .await
    }

    /// Sends one message (an encoded message: `MessageBuilder`, `Bytes`, `Vec<u8>`...),
    /// waiting for credit first. `settled`: send it presettled (at-most-once).
    ///
    /// Messages larger than the peer's max-frame-size go out as multi-frame transfers.
    /// Cancel-safe: if the future is dropped, nothing was sent and no credit was used.
    pub async fn send(&self, payload: impl Into<Payload>, settled: bool) -> Result<Delivery> {
        let payload = payload.into().0;
        loop {
            self.wait_credit(1).await?;
            // A slot in the command queue first, so nothing awaits between taking the credit
            // and handing the transfer over.
            let permit = self
                .core
                .commands
                .reserve()
                .await
                .map_err(|_| self.core.conn.gone())?;
            let tag = self.core.shared.with(|s| {
                if s.terminal.is_some() || s.send_credit() == 0 {
                    return None;
                }
                let tag = u64::from(s.delivery_count);
                s.delivery_count = s.delivery_count.wrapping_add(1);
                Some(tag)
            });
            let Some(tag) = tag else { continue };
            let (outcome, rx) = if settled {
                (None, None)
            } else {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            };
            permit.send(Command::Transfer {
                handle: self.core.handle,
                tag,
                payload,
                settled,
                outcome,
            });
            return Ok(Delivery {
                tag,
                outcome: rx,
                conn: self.core.conn.clone(),
            });
        }
    }

    /// The peer's answering `attach`.
    pub fn remote_attach(&self) -> &Attach {
        &self.core.remote_attach
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

    /// Detaches with an error of ours.
    pub async fn detach_with(&self, closed: bool, error: AmqpError) -> Result<()> {
        self.core.detach(closed, Some(error)).await
    }

    /// `detach(true)`.
    pub async fn close(&self) -> Result<()> {
        self.detach(true).await
    }
}
