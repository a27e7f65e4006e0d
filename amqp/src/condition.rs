//! The spec's error condition symbols (transport 2.8.15-2.8.18), in one table.
//!
//! They are plain `&'static str` so they can be compared against a decoded
//! [`Symbol`](crate::Symbol) without allocating and turned into one with `Symbol::from`.

// amqp-error (2.8.15)
pub const INTERNAL_ERROR: &str = "amqp:internal-error";
pub const NOT_FOUND: &str = "amqp:not-found";
pub const UNAUTHORIZED_ACCESS: &str = "amqp:unauthorized-access";
pub const DECODE_ERROR: &str = "amqp:decode-error";
pub const RESOURCE_LIMIT_EXCEEDED: &str = "amqp:resource-limit-exceeded";
pub const NOT_ALLOWED: &str = "amqp:not-allowed";
pub const INVALID_FIELD: &str = "amqp:invalid-field";
pub const NOT_IMPLEMENTED: &str = "amqp:not-implemented";
pub const RESOURCE_LOCKED: &str = "amqp:resource-locked";
pub const PRECONDITION_FAILED: &str = "amqp:precondition-failed";
pub const RESOURCE_DELETED: &str = "amqp:resource-deleted";
pub const ILLEGAL_STATE: &str = "amqp:illegal-state";
pub const FRAME_SIZE_TOO_SMALL: &str = "amqp:frame-size-too-small";

// connection-error (2.8.16)
pub const CONNECTION_FORCED: &str = "amqp:connection:forced";
pub const CONNECTION_FRAMING_ERROR: &str = "amqp:connection:framing-error";
pub const CONNECTION_REDIRECT: &str = "amqp:connection:redirect";

// session-error (2.8.17)
pub const SESSION_WINDOW_VIOLATION: &str = "amqp:session:window-violation";
pub const SESSION_ERRANT_LINK: &str = "amqp:session:errant-link";
pub const SESSION_HANDLE_IN_USE: &str = "amqp:session:handle-in-use";
pub const SESSION_UNATTACHED_HANDLE: &str = "amqp:session:unattached-handle";

// link-error (2.8.18)
pub const LINK_DETACH_FORCED: &str = "amqp:link:detach-forced";
pub const LINK_TRANSFER_LIMIT_EXCEEDED: &str = "amqp:link:transfer-limit-exceeded";
pub const LINK_MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
pub const LINK_REDIRECT: &str = "amqp:link:redirect";
pub const LINK_STOLEN: &str = "amqp:link:stolen";

/// Every condition above, e.g. to validate a configured condition name.
pub const ALL: &[&str] = &[
    INTERNAL_ERROR,
    NOT_FOUND,
    UNAUTHORIZED_ACCESS,
    DECODE_ERROR,
    RESOURCE_LIMIT_EXCEEDED,
    NOT_ALLOWED,
    INVALID_FIELD,
    NOT_IMPLEMENTED,
    RESOURCE_LOCKED,
    PRECONDITION_FAILED,
    RESOURCE_DELETED,
    ILLEGAL_STATE,
    FRAME_SIZE_TOO_SMALL,
    CONNECTION_FORCED,
    CONNECTION_FRAMING_ERROR,
    CONNECTION_REDIRECT,
    SESSION_WINDOW_VIOLATION,
    SESSION_ERRANT_LINK,
    SESSION_HANDLE_IN_USE,
    SESSION_UNATTACHED_HANDLE,
    LINK_DETACH_FORCED,
    LINK_TRANSFER_LIMIT_EXCEEDED,
    LINK_MESSAGE_SIZE_EXCEEDED,
    LINK_REDIRECT,
    LINK_STOLEN,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_unique_and_namespaced() {
        assert_eq!(ALL.len(), 25);
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.starts_with("amqp:"), "{a}");
            assert!(a.is_ascii());
            for b in &ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
