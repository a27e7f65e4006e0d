//! The gateway's errors.

/// What can fail when starting or running the gateway. Faults of one client never surface here: they close
/// that client's connection (with a CONNACK or DISCONNECT reason code where MQTT has one).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the MQTT listener on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the router is shutting down")]
    RouterGone(#[from] shoal_router::HandleError),
    #[error("socket error")]
    Io(#[from] std::io::Error),
    #[error("protocol error from the client")]
    Protocol(#[from] shoal_mqtt::Error),
    #[error("TLS configuration of the MQTTS listener")]
    Tls(#[source] rustls::Error),
}
