//! `RouterHandle`: the management API of a running router (address rules, metrics).

use tokio::sync::{mpsc, oneshot};

use crate::config::AddressRule;
use crate::core::api::{Admin, CoreMsg};
use crate::core::metrics::Snapshot;

/// A cheap, cloneable handle to a running router's core.
#[derive(Clone, Debug)]
pub struct RouterHandle {
    core: Option<mpsc::Sender<CoreMsg>>,
}

/// Error from a management call.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("the router is shutting down")]
    ShuttingDown,
}

impl RouterHandle {
    pub(crate) fn new(core: mpsc::Sender<CoreMsg>) -> Self {
        RouterHandle { core: Some(core) }
    }

    /// A handle to no router: calls succeed and do nothing (for testing the layers above).
    #[doc(hidden)]
    pub fn placeholder() -> Self {
        RouterHandle { core: None }
    }

    async fn ask<T: Default>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Admin,
    ) -> Result<T, HandleError> {
        let Some(core) = &self.core else {
            return Ok(T::default());
        };
        let (tx, rx) = oneshot::channel();
        core.send(CoreMsg::Admin(make(tx)))
            .await
            .map_err(|_| HandleError::ShuttingDown)?;
        rx.await.map_err(|_| HandleError::ShuttingDown)
    }

    /// Insert or replace the rule with `rule.name`; takes effect for new deliveries at once.
    pub async fn set_address(&self, rule: AddressRule) -> Result<(), HandleError> {
        self.ask(|tx| Admin::SetAddress(rule, tx)).await
    }

    /// Remove the rule named `name`. Returns whether it existed.
    pub async fn delete_address(&self, name: &str) -> Result<bool, HandleError> {
        let name = name.to_owned();
        self.ask(|tx| Admin::DeleteAddress(name, tx)).await
    }

    /// All declared rules, sorted by name.
    pub async fn addresses(&self) -> Result<Vec<AddressRule>, HandleError> {
        self.ask(Admin::ListAddresses).await
    }

    /// Counters and gauges of the router right now.
    pub async fn snapshot(&self) -> Result<Snapshot, HandleError> {
        self.ask(Admin::Metrics).await
    }

    /// Join the core as a protocol adaptor's connection (see [`crate::adaptor`]).
    pub async fn open_adaptor_connection(
        &self,
    ) -> Result<crate::adaptor::AdaptorConnection, HandleError> {
        let core = self.core.clone().ok_or(HandleError::ShuttingDown)?;
        crate::adaptor::AdaptorConnection::open(core).await
    }

    /// The mesh as this router sees it: neighbours, routes, where each address's consumers are.
    pub async fn mesh(&self) -> Result<crate::core::MeshSnapshot, HandleError> {
        self.ask(Admin::Mesh).await
    }

    /// Metrics in the Prometheus text exposition format.
    pub async fn prometheus(&self) -> Result<String, HandleError> {
        Ok(self.snapshot().await?.to_prometheus())
    }
}
