//! What senders and receivers share: the handle, the command channel and the link's state.

use std::sync::Arc;

use shoal_amqp::{AmqpError, Attach};
use tokio::sync::{mpsc, oneshot};

use crate::driver::Command;
use crate::error::{ClientError, Result};
use crate::shared::{ConnShared, LinkShared};

#[derive(Debug)]
pub(crate) struct LinkCore {
    pub handle: u32,
    pub commands: mpsc::Sender<Command>,
    pub conn: Arc<ConnShared>,
    pub shared: Arc<LinkShared>,
    pub remote_attach: Attach,
}

impl LinkCore {
    pub async fn command(&self, c: Command) -> Result<()> {
        self.commands.send(c).await.map_err(|_| self.conn.gone())
    }

    /// Awaits a reply from the connection task.
    pub async fn reply<T>(&self, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        rx.await.map_err(|_| self.conn.gone())?
    }

    /// Why the link is unusable, if it is.
    pub fn terminal(&self) -> Option<ClientError> {
        self.shared.with(|s| s.terminal.clone())
    }

    pub fn detach_error(&self) -> Option<AmqpError> {
        self.shared.with(|s| s.remote_error.clone())
    }

    pub async fn detached(&self) -> ClientError {
        self.shared
            .wait(|s| {
                if s.remote_detached {
                    s.terminal.clone()
                } else {
                    None
                }
            })
            .await
    }

    pub async fn detach(&self, closed: bool, error: Option<AmqpError>) -> Result<()> {
        if self.shared.with(|s| s.remote_detached) {
            return match self.detach_error() {
                Some(e) => Err(ClientError::Remote(e)),
                None => Ok(()),
            };
        }
        let (reply, rx) = oneshot::channel();
        self.command(Command::Detach {
            handle: self.handle,
            closed,
            error,
            reply: Some(reply),
        })
        .await?;
        self.reply(rx).await
    }
}

impl Drop for LinkCore {
    fn drop(&mut self) {
        // Best effort: a link dropped without detaching is closed, so the peer does not keep
        // routing to it. If the command queue is full the connection is busy or going away.
        if self.shared.with(|s| s.terminal.is_none()) {
            let _ = self.commands.try_send(Command::Detach {
                handle: self.handle,
                closed: true,
                error: None,
                reply: None,
            });
        }
    }
}
