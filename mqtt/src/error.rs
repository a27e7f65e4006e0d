//! The crate's single error type and its mapping to MQTT 5 reason codes and MQTT 3.1.1 CONNACK
//! return codes.
//!
//! Every validation rule has its own variant so that the gateway (and the tests) can tell them
//! apart; [`Error::reason_code`] is the one table that maps them onto the wire.

use crate::reason;

/// Decoding, validation or encoding failed.
///
/// "Need more bytes" is never an error: [`check`](crate::check) reports it as `Ok(None)`. Running
/// out of bytes *inside* a packet whose length was declared complete is [`Error::Truncated`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The remaining-length field (or another variable byte integer) uses more than 4 bytes.
    #[error("malformed variable byte integer")]
    MalformedVarInt,
    /// The whole packet (fixed header included) is larger than the negotiated maximum.
    #[error("packet of {size} bytes exceeds the maximum packet size {max}")]
    PacketTooLarge { size: usize, max: usize },
    /// The buffer handed to `parse` is not exactly one packet long.
    #[error("packet length {actual} does not match its remaining length ({declared} expected)")]
    LengthMismatch { declared: usize, actual: usize },
    /// A field runs past the end of the packet (or of its property block).
    #[error("packet ends before its declared fields")]
    Truncated,
    /// Bytes left over after the last field of a packet.
    #[error("unexpected trailing bytes in {0}")]
    TrailingBytes(&'static str),
    /// Control packet type 0, or AUTH (15) in MQTT 3.1.1.
    #[error("invalid control packet type {0}")]
    InvalidPacketType(u8),
    /// The low nibble of the fixed header is not what the packet type requires.
    #[error("reserved flags 0x{flags:x} set in {packet}")]
    ReservedFlags { packet: &'static str, flags: u8 },
    /// QoS 3 in a PUBLISH fixed header.
    #[error("invalid QoS 3")]
    InvalidQoS,
    /// DUP set on a QoS 0 PUBLISH (MQTT-3.3.1-2).
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    /// A packet identifier of 0 where a non-zero one is required (MQTT-2.2.1-3).
    #[error("packet identifier 0 in {0}")]
    ZeroPacketId(&'static str),
    /// A UTF-8 string field is not valid UTF-8 (surrogates included, MQTT-1.5.4-1).
    #[error("invalid UTF-8 in a string field")]
    InvalidUtf8,
    /// A UTF-8 string field contains U+0000 (MQTT-1.5.4-2).
    #[error("U+0000 in a string field")]
    NullCharacter,
    /// A string or binary field is longer than its 16-bit length prefix can say (encoding only).
    #[error("{0} longer than 65535 bytes")]
    TooLong(&'static str),
    /// The CONNECT protocol name is neither "MQTT" nor "MQIsdp".
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// A protocol level we do not speak; MQIsdp (3.1, level 3) lands here too.
    #[error("unsupported protocol version {0}")]
    UnsupportedProtocolVersion(u8),
    /// Bit 0 of the CONNECT flags is set (MQTT-3.1.2-3).
    #[error("reserved CONNECT flag set")]
    ReservedConnectFlag,
    /// Will QoS or Will Retain set without the Will flag, or Will QoS 3 (MQTT-3.1.2-11..15).
    #[error("inconsistent will flags")]
    InvalidWillFlags,
    /// MQTT 3.1.1 only: password flag set without the user name flag (MQTT-3.1.2-22).
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// MQTT 3.1.1: an empty client id with clean session 0 (MQTT-3.1.3-7).
    #[error("client identifier not valid")]
    InvalidClientId,
    /// A topic name that contains `+` or `#` (MQTT-3.3.2-2).
    #[error("wildcard in topic name")]
    WildcardInTopicName,
    /// An empty topic name: always in 3.1.1, without a topic alias in 5.
    #[error("empty topic name")]
    EmptyTopicName,
    /// A topic filter with a misplaced wildcard, an empty filter or a bad `$share` prefix.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(&'static str),
    /// A topic or filter with more levels than [`MAX_LEVELS`](crate::topic::MAX_LEVELS).
    #[error("topic has more than {0} levels")]
    TooManyLevels(usize),
    /// SUBSCRIBE or UNSUBSCRIBE without any topic filter (MQTT-3.8.3-3, 3.10.3-2).
    #[error("empty subscription list in {0}")]
    EmptySubscriptionList(&'static str),
    /// Reserved bits or QoS 3 in a subscription options byte (MQTT-3.8.3-5).
    #[error("invalid subscription options 0x{0:02x}")]
    InvalidSubscriptionOptions(u8),
    /// Retain handling 3 (MQTT 5, 3.8.3.1).
    #[error("invalid retain handling 3")]
    InvalidRetainHandling,
    /// No Local on a shared subscription (MQTT 5, MQTT-3.8.3-4).
    #[error("no-local on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A property identifier the spec does not define.
    #[error("unknown property identifier 0x{0:x}")]
    UnknownProperty(u32),
    /// A defined property in a packet that may not carry it.
    #[error("property 0x{id:02x} not allowed in {packet}")]
    PropertyNotAllowed { id: u8, packet: &'static str },
    /// A property that may appear at most once appears twice.
    #[error("duplicate property 0x{0:02x}")]
    DuplicateProperty(u8),
    /// A property value outside its allowed range (e.g. receive maximum 0, topic alias 0).
    #[error("invalid value for property 0x{0:02x}")]
    InvalidPropertyValue(u8),
    /// A reason code (or 3.1.1 return code) not defined for the packet.
    #[error("reason code 0x{code:02x} not valid in {packet}")]
    InvalidReasonCode { packet: &'static str, code: u8 },
    /// The payload format indicator says UTF-8 but the payload is not
    /// (see [`Publish::check_payload_format`](crate::Publish::check_payload_format)).
    #[error("payload is not valid UTF-8")]
    PayloadFormatInvalid,
}

impl Error {
    /// The MQTT 5 reason code to send in a CONNACK (before the session is up) or a DISCONNECT
    /// (after) when this error ends a connection.
    pub fn reason_code(&self) -> u8 {
        match self {
            Error::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            Error::UnsupportedProtocolVersion(_) | Error::InvalidProtocolName => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
            Error::InvalidClientId => reason::CLIENT_IDENTIFIER_NOT_VALID,
            Error::PayloadFormatInvalid => reason::PAYLOAD_FORMAT_INVALID,
            Error::WildcardInTopicName | Error::TooManyLevels(_) => reason::TOPIC_NAME_INVALID,
            Error::InvalidTopicFilter(_) => reason::TOPIC_FILTER_INVALID,
            // The spec calls these "a Protocol Error" rather than malformed.
            Error::DuplicateProperty(_)
            | Error::InvalidPropertyValue(_)
            | Error::EmptyTopicName
            | Error::EmptySubscriptionList(_)
            | Error::InvalidRetainHandling
            | Error::NoLocalOnSharedSubscription
            | Error::InvalidPacketType(_) => reason::PROTOCOL_ERROR,
            Error::MalformedVarInt
            | Error::LengthMismatch { .. }
            | Error::Truncated
            | Error::TrailingBytes(_)
            | Error::ReservedFlags { .. }
            | Error::InvalidQoS
            | Error::DupOnQoS0
            | Error::ZeroPacketId(_)
            | Error::InvalidUtf8
            | Error::NullCharacter
            | Error::TooLong(_)
            | Error::ReservedConnectFlag
            | Error::InvalidWillFlags
            | Error::PasswordWithoutUsername
            | Error::InvalidSubscriptionOptions(_)
            | Error::UnknownProperty(_)
            | Error::PropertyNotAllowed { .. }
            | Error::InvalidReasonCode { .. } => reason::MALFORMED_PACKET,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code for a CONNECT refused with this error, or `None` when
    /// 3.1.1 says to close the connection without a CONNACK.
    pub fn connack_v311_code(&self) -> Option<u8> {
        match self {
            Error::UnsupportedProtocolVersion(_) => {
                Some(reason::V311_UNACCEPTABLE_PROTOCOL_VERSION)
            }
            Error::InvalidClientId => Some(reason::V311_IDENTIFIER_REJECTED),
            _ => None,
        }
    }
}
