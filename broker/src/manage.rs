//! The broker's queue-management node: a sender attached to [`MANAGE_ADDRESS`] declares and deletes queues
//! with messages, one request per message, and the delivery's outcome is the answer: *accepted* once the
//! change is in the store, *rejected* (with the reason) otherwise. No reply address or correlation is
//! needed, so a request works through any chain of link routes, hop by hop, as a message does.
//!
//! A request is a message with the application properties `operation` (`declare` or `delete`) and
//! `address` (the queue). Both are idempotent: declaring a queue that exists keeps its messages, deleting
//! one that does not exist is accepted.
//!
//! Only *system* queues, whose address starts with `$` (the MQTT gateway's `$mqtt/session/...`), can be
//! managed here. Every other address belongs to the manifests (`shoal apply`, the operator), which must stay
//! its one owner: a queue created here would be one the manifests do not know and would never delete.

use bytes::Bytes;
use shoal_amqp::{condition, decode_message, Value};
use shoal_router::core::api::LinkKey;

use crate::config::BrokerAddress;
use crate::core::Core;
use crate::persist::Done;

/// The address of the queue-management node.
pub const MANAGE_ADDRESS: &str = "$shoal/queues";
/// The application property naming the operation: [`DECLARE`] or [`DELETE`].
pub const OPERATION: &str = "operation";
/// The application property naming the queue.
pub const ADDRESS: &str = "address";
pub const DECLARE: &str = "declare";
pub const DELETE: &str = "delete";

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Declare(String),
    Delete(String),
}

/// Read a request, or say what is wrong with it.
fn parse(body: &[u8]) -> Result<Request, String> {
    let m = decode_message(body).map_err(|e| format!("not a valid AMQP message: {e}"))?;
    let text = |key: &str| {
        m.application_properties
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Symbol(s) => Some(s.0.clone()),
                _ => None,
            })
            .ok_or_else(|| format!("a request needs the string application property `{key}`"))
    };
    let operation = text(OPERATION)?;
    let address = text(ADDRESS)?;
    if !address.starts_with('$') || address.len() < 2 {
        return Err(format!(
            "`{address}` is not a system queue (its address must start with `$`): declare it with a manifest"
        ));
    }
    match operation.as_str() {
        DECLARE => Ok(Request::Declare(address)),
        DELETE => Ok(Request::Delete(address)),
        other => Err(format!(
            "unknown operation `{other}` (expected `{DECLARE}` or `{DELETE}`)"
        )),
    }
}

impl Core {
    /// A request from a sender on the management node: carry it out, and settle it once that is stored.
    pub(crate) fn manage(&mut self, link: LinkKey, delivery: Option<u32>, body: Bytes) {
        let request = match parse(&body) {
            Ok(r) => r,
            Err(text) => return self.refused(link, delivery, condition::INVALID_FIELD, text),
        };
        match request {
            Request::Declare(name) => {
                if let Err(e) = self.set_address(BrokerAddress::queue(name)) {
                    return self.refused(
                        link,
                        delivery,
                        condition::PRECONDITION_FAILED,
                        e.to_string(),
                    );
                }
            }
            Request::Delete(name) => {
                self.delete_address(&name);
            }
        }
        // Settled when the pass's batch (which carries the change) is stored.
        self.batch.done.push(Done::Stored {
            link,
            delivery_id: delivery,
        });
    }
}

#[cfg(test)]
mod tests {
    use shoal_amqp::MessageBuilder;

    use super::*;

    fn request(props: &[(&str, &str)]) -> Bytes {
        MessageBuilder {
            application_properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
            ..MessageBuilder::default()
        }
        .to_bytes()
    }

    #[test]
    fn declare_and_delete_name_a_system_queue() {
        let r = parse(&request(&[
            ("operation", "declare"),
            ("address", "$mqtt/session/t/c"),
        ]));
        assert_eq!(r, Ok(Request::Declare("$mqtt/session/t/c".into())));
        let r = parse(&request(&[("operation", "delete"), ("address", "$x")]));
        assert_eq!(r, Ok(Request::Delete("$x".into())));
    }

    #[test]
    fn a_request_missing_a_field_or_naming_a_user_address_is_refused_with_the_reason() {
        let e = parse(&request(&[("address", "$x")])).unwrap_err();
        assert!(e.contains("`operation`"), "{e}");
        let e = parse(&request(&[("operation", "declare")])).unwrap_err();
        assert!(e.contains("`address`"), "{e}");
        let e = parse(&request(&[("operation", "declare"), ("address", "orders")])).unwrap_err();
        assert!(e.contains("not a system queue"), "{e}");
        let e = parse(&request(&[("operation", "declare"), ("address", "$")])).unwrap_err();
        assert!(e.contains("not a system queue"), "{e}");
        let e = parse(&request(&[("operation", "purge"), ("address", "$x")])).unwrap_err();
        assert!(e.contains("unknown operation `purge`"), "{e}");
        let e = parse(b"\x00garbage").unwrap_err();
        assert!(e.contains("not a valid AMQP message"), "{e}");
    }
}
