//! Sans-IO MQTT codec for Shoal's MQTT gateway: MQTT 3.1.1 (protocol level 4) and MQTT 5
//! (level 5) control packets, their validation rules, topic matching, and the subscription and
//! retained-message tries.
//!
//! # Shape
//!
//! Nothing here does I/O. A connection reads bytes into a `BytesMut` and then:
//!
//! 1. [`check`] on the buffer: `Ok(None)` means "need more bytes" (incompleteness is not an
//!    error), `Ok(Some(len))` means a whole packet is buffered, `Err` means the client must be
//!    disconnected (packet larger than the maximum packet size, malformed remaining length);
//! 2. `buf.split_to(len).freeze()` and [`parse`] with the connection's [`Version`]. The first
//!    packet is CONNECT, which reads the version itself ([`Connect::version`]). Topics and other
//!    strings are [`MqttStr`]s (validated UTF-8 `Bytes`), binary properties and payloads are
//!    `Bytes`: all are slices of the packet, so decoding copies nothing.
//!
//! Writing appends to a `BytesMut`: [`Packet::encode`] for anything, and allocation-free fast
//! paths for the hot packets: [`Publish::encode_header`] (everything but the payload, so a
//! large payload can go out as its own chunk), [`encode_pub_resp`] (PUBACK and friends),
//! [`encode_connack`] and [`encode_pingresp`].
//!
//! # Errors
//!
//! Every spec rule the codec enforces has its own [`Error`] variant; [`Error::reason_code`]
//! maps it to the MQTT 5 reason code for CONNACK/DISCONNECT and
//! [`Error::connack_v311_code`] to a 3.1.1 CONNACK return code where one exists. Decoding is
//! defensive: every length is checked against the packet before use, nothing is allocated
//! from a length field, and no input can make it panic (see the no-panic tests and the
//! `fuzz/` target).
//!
//! # Topics
//!
//! [`topic`] validates names and filters, implements [`topic::matches`] and `$share` parsing,
//! and provides [`TopicTree`] (which subscriptions match a published topic) and
//! [`RetainTree`] (which retained messages match a new subscription).

pub mod codec;
pub mod error;
pub mod packet;
pub mod properties;
pub mod reason;
pub mod topic;

pub use codec::MqttStr;
pub use error::Error;
pub use packet::{
    check, encode_connack, encode_pingreq, encode_pingresp, encode_pub_resp, parse, Auth, ConnAck,
    Connect, Disconnect, Packet, PubResp, PubRespKind, Publish, QoS, RetainHandling, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Version, Will,
};
pub use properties::Properties;
pub use topic::{RetainTree, TopicTree};
