//! The mesh trace: the message annotation `x-opt-shoal-trace`, a list of the router ids a message
//! has left on inter-router links, oldest first. Routers read it to never send a message back
//! towards a router it already crossed (loops in a mesh with cycles) and to learn a multicast
//! message's origin (the first id).
//!
//! Appending rewrites only the leading sections (header, delivery and message annotations): the
//! caller keeps the rest of the message as a slice of the bytes it received, so the body is never
//! copied or decoded.

use bytes::{Bytes, BytesMut};

use super::rewrite::layout;
use crate::codec::{descriptor as desc, put_descriptor, put_value};
use crate::error::DecodeError;
use crate::types::{Symbol, Value};

/// The message-annotation key of the trace.
pub const TRACE_ANNOTATION: &str = "x-opt-shoal-trace";

/// The message-annotation key of the address a pattern subscription matched, on a copy a router sends to
/// another router's pattern subscribers (the message itself may name no address: it came on a named link).
pub const MATCHED_ANNOTATION: &str = "x-opt-shoal-matched";

/// Ids in a trace we accept (a trace is as long as the path; anything longer is a loop or garbage).
const MAX_TRACE: usize = 256;

fn trace_of(annotations: Option<&Vec<(Value, Value)>>) -> Result<Vec<String>, DecodeError> {
    let Some(pairs) = annotations else {
        return Ok(Vec::new());
    };
    let found = pairs
        .iter()
        .find(|(k, _)| matches!(k, Value::Symbol(s) if s.as_str() == TRACE_ANNOTATION));
    let Some((_, value)) = found else {
        return Ok(Vec::new());
    };
    let items = match value {
        Value::List(items) | Value::Array(items) => items,
        Value::Null => return Ok(Vec::new()),
        _ => return Err(DecodeError::InvalidValue("x-opt-shoal-trace")),
    };
    if items.len() > MAX_TRACE {
        return Err(DecodeError::InvalidValue("x-opt-shoal-trace"));
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Symbol(s) => Ok(s.as_str().to_owned()),
            _ => Err(DecodeError::InvalidValue("x-opt-shoal-trace")),
        })
        .collect()
}

/// The router ids in the message's trace (empty when it has none). `bytes` must hold at least the
/// leading sections up to the first section after the message annotations.
pub fn read_trace(bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
    let layout = layout(bytes)?;
    trace_of(layout.annotations.as_ref())
}

/// New leading sections for the message in `bytes`, with `id` appended to its trace. Returns the
/// new head and the offset in `bytes` where the unchanged rest starts: the message to send is
/// `head` followed by `bytes[offset..]` (and any later parts of it).
pub fn append_trace(bytes: &[u8], id: &str) -> Result<(Bytes, usize), DecodeError> {
    append_trace_matched(bytes, id, None)
}

/// The address in the message's [`MATCHED_ANNOTATION`], if it has one.
pub fn read_matched(bytes: &[u8]) -> Result<Option<String>, DecodeError> {
    let layout = layout(bytes)?;
    let found = layout.annotations.as_ref().and_then(|pairs| {
        pairs
            .iter()
            .find(|(k, _)| matches!(k, Value::Symbol(s) if s.as_str() == MATCHED_ANNOTATION))
    });
    match found.map(|(_, v)| v) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DecodeError::InvalidValue("x-opt-shoal-matched")),
    }
}

/// [`append_trace`], also setting (with `matched`) the [`MATCHED_ANNOTATION`].
pub fn append_trace_matched(
    bytes: &[u8],
    id: &str,
    matched: Option<&str>,
) -> Result<(Bytes, usize), DecodeError> {
    let layout = layout(bytes)?;
    let mut trace: Vec<Value> = trace_of(layout.annotations.as_ref())?
        .into_iter()
        .map(Value::String)
        .collect();
    trace.push(Value::String(id.to_owned()));
    let mut pairs = layout.annotations.unwrap_or_default();
    let key = Value::Symbol(Symbol::from(TRACE_ANNOTATION));
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = Value::List(trace),
        None => pairs.push((key, Value::List(trace))),
    }
    if let Some(matched) = matched {
        let key = Value::Symbol(Symbol::from(MATCHED_ANNOTATION));
        let value = Value::String(matched.to_owned());
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }
    let mut head = BytesMut::with_capacity(layout.after_header + 64 + 16 * pairs.len());
    head.extend_from_slice(&bytes[..layout.after_header]);
    if let Some(range) = layout.delivery_annotations {
        head.extend_from_slice(&bytes[range]);
    }
    put_descriptor(&mut head, desc::MESSAGE_ANNOTATIONS);
    put_value(&mut head, &Value::Map(pairs));
    Ok((head.freeze(), layout.rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matched_address_travels_with_the_trace_and_is_replaced_not_repeated() {
        let m = message(Vec::new());
        assert_eq!(read_matched(&m).unwrap(), None);
        let (head, rest) = append_trace_matched(&m, "A", Some("fleet/1/pos")).unwrap();
        let once = [&head[..], &m[rest..]].concat();
        assert_eq!(read_matched(&once).unwrap().as_deref(), Some("fleet/1/pos"));
        let (head, rest) = append_trace_matched(&once, "B", Some("fleet/2/pos")).unwrap();
        let twice = [&head[..], &once[rest..]].concat();
        assert_eq!(
            read_matched(&twice).unwrap().as_deref(),
            Some("fleet/2/pos")
        );
        assert_eq!(read_trace(&twice).unwrap(), ["A", "B"]);
        let decoded = decode_message(&twice).unwrap();
        assert_eq!(decoded.message_annotations.len(), 2);
        assert_eq!(decoded.body, Body::Data(Bytes::from_static(b"payload")));
    }
    use crate::message::{decode_message, Body, Header, MessageBuilder};

    fn message(annotations: Vec<(Symbol, Value)>) -> Bytes {
        MessageBuilder {
            header: Some(Header {
                durable: true,
                ..Header::default()
            }),
            to: Some("q".into()),
            message_annotations: annotations,
            body: Body::Data(Bytes::from_static(b"payload")),
            ..MessageBuilder::default()
        }
        .to_bytes()
    }

    fn whole(bytes: &[u8], id: &str) -> Vec<u8> {
        let (head, rest) = append_trace(bytes, id).unwrap();
        let mut out = head.to_vec();
        out.extend_from_slice(&bytes[rest..]);
        out
    }

    #[test]
    fn a_message_without_trace_gets_one_and_keeps_everything_else() {
        let original = message(vec![(Symbol::from("x-opt-other"), Value::Int(5))]);
        assert_eq!(read_trace(&original).unwrap(), Vec::<String>::new());
        let once = whole(&original, "A");
        let twice = whole(&once, "B");
        assert_eq!(read_trace(&twice).unwrap(), vec!["A", "B"]);
        let decoded = decode_message(&twice).unwrap();
        assert!(decoded.header.unwrap().durable);
        assert_eq!(decoded.to.as_deref(), Some("q"));
        assert_eq!(decoded.body, Body::Data(Bytes::from_static(b"payload")));
        assert!(decoded
            .message_annotations
            .iter()
            .any(|(k, v)| k.as_str() == "x-opt-other" && *v == Value::Int(5)));
    }

    #[test]
    fn a_bad_trace_is_an_error() {
        let bad = message(vec![(Symbol::from(TRACE_ANNOTATION), Value::Int(1))]);
        assert!(read_trace(&bad).is_err());
        assert!(append_trace(&bad, "A").is_err());
    }
}
