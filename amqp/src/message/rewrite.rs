//! Re-encoding a stored message's bare sections for a broker: a new `header` (e.g. a higher
//! `delivery-count` on redelivery) and extra `message-annotations` (e.g. why a message was
//! dead-lettered). Every other section is copied byte for byte: the body is never decoded.

use bytes::{Bytes, BytesMut};

use super::sections::Header;
use crate::codec::{descriptor as desc, put_descriptor, put_value, Decoder, FieldReader};
use crate::error::DecodeError;
use crate::types::{Descriptor, Symbol, Value};

/// The byte ranges of a message's leading sections, found without decoding the body.
pub(super) struct Layout {
    pub(super) header: Option<Header>,
    /// End of the header section (0 without one).
    pub(super) after_header: usize,
    /// Delivery annotations, as encoded.
    pub(super) delivery_annotations: Option<std::ops::Range<usize>>,
    /// The message-annotations map's entries (decoded: they are small and about to be merged).
    pub(super) annotations: Option<Vec<(Value, Value)>>,
    /// Where the sections after the annotations start.
    pub(super) rest: usize,
}

pub(super) fn layout(bytes: &[u8]) -> Result<Layout, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let mut out = Layout {
        header: None,
        after_header: 0,
        delivery_annotations: None,
        annotations: None,
        rest: 0,
    };
    loop {
        let start = dec.position();
        if dec.is_empty() {
            out.rest = start;
            return Ok(out);
        }
        let mut probe = dec.clone();
        let code = probe.described_header()?;
        match code {
            desc::HEADER if out.header.is_none() && start == 0 => {
                out.header = Some(Header::decode(&mut FieldReader::new(&mut probe)?)?);
                out.after_header = probe.position();
            }
            desc::DELIVERY_ANNOTATIONS if out.delivery_annotations.is_none() => {
                probe.skip_value()?;
                out.delivery_annotations = Some(start..probe.position());
            }
            desc::MESSAGE_ANNOTATIONS if out.annotations.is_none() => {
                out.annotations = Some(match probe.read_value()? {
                    Value::Map(pairs) => pairs,
                    Value::Null => Vec::new(),
                    _ => return Err(DecodeError::InvalidValue("message-annotations")),
                });
            }
            desc::HEADER
            | desc::DELIVERY_ANNOTATIONS
            | desc::MESSAGE_ANNOTATIONS
            | desc::PROPERTIES
            | desc::APPLICATION_PROPERTIES
            | desc::DATA
            | desc::AMQP_SEQUENCE
            | desc::AMQP_VALUE
            | desc::FOOTER => {
                out.rest = start;
                return Ok(out);
            }
            other => return Err(DecodeError::UnknownDescriptor(Descriptor::Code(other))),
        }
        dec = probe;
    }
}

/// The message's `header` section (the default header when it has none).
pub fn read_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    Ok(layout(bytes)?.header.unwrap_or_default())
}

/// `bytes` with its header replaced by `header` and `annotations` merged into its
/// message-annotations (an annotation of the same key is replaced; a missing section is added).
/// Sections after the message annotations are copied unchanged.
pub fn rewrite_message(
    bytes: &[u8],
    header: Option<&Header>,
    annotations: &[(Symbol, Value)],
) -> Result<Bytes, DecodeError> {
    let layout = layout(bytes)?;
    let mut out = BytesMut::with_capacity(bytes.len() + 64 + 32 * annotations.len());
    match (header, &layout.header) {
        (Some(h), _) => h.encode(&mut out),
        (None, Some(_)) => out.extend_from_slice(&bytes[..layout.after_header]),
        (None, None) => {}
    }
    if let Some(range) = layout.delivery_annotations.clone() {
        out.extend_from_slice(&bytes[range]);
    }
    let mut pairs = layout.annotations.unwrap_or_default();
    for (key, value) in annotations {
        let key = Value::Symbol(key.clone());
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => pairs.push((key, value.clone())),
        }
    }
    if !pairs.is_empty() {
        put_descriptor(&mut out, desc::MESSAGE_ANNOTATIONS);
        put_value(&mut out, &Value::Map(pairs));
    }
    out.extend_from_slice(&bytes[layout.rest..]);
    Ok(out.freeze())
}

/// `bytes` with the header's `delivery-count` set to `count` (and `first-acquirer` cleared once the
/// message was delivered before); everything else unchanged.
pub fn with_delivery_count(bytes: &[u8], count: u32) -> Result<Bytes, DecodeError> {
    let mut header = read_header(bytes)?;
    header.delivery_count = count;
    if count > 0 {
        header.first_acquirer = false;
    }
    rewrite_message(bytes, Some(&header), &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{decode_message, Body, MessageBuilder};

    fn sample(header: Option<Header>, annotations: Vec<(Symbol, Value)>) -> MessageBuilder {
        MessageBuilder {
            header,
            message_id: Some(Value::Ulong(7)),
            to: Some("q".into()),
            application_properties: vec![("k".into(), Value::Int(3))],
            message_annotations: annotations,
            body: Body::Data(Bytes::from_static(b"payload")),
            ..MessageBuilder::default()
        }
    }

    #[test]
    fn delivery_count_is_replaced_and_the_rest_kept() {
        let header = Header {
            durable: true,
            ttl: Some(500),
            first_acquirer: true,
            ..Header::default()
        };
        let original = sample(Some(header), vec![]);
        let bytes = original.to_bytes();
        let out = with_delivery_count(&bytes, 3).unwrap();
        let decoded = decode_message(&out).unwrap();
        let h = decoded.header.clone().unwrap();
        assert_eq!(h.delivery_count, 3);
        assert!(h.durable);
        assert_eq!(h.ttl, Some(500));
        assert!(!h.first_acquirer);
        assert_eq!(
            MessageBuilder {
                header: None,
                ..decoded
            },
            MessageBuilder {
                header: None,
                ..original
            }
        );
    }

    #[test]
    fn a_header_is_added_when_missing() {
        let bytes = sample(None, vec![]).to_bytes();
        let out = with_delivery_count(&bytes, 1).unwrap();
        assert_eq!(read_header(&out).unwrap().delivery_count, 1);
        assert_eq!(read_header(&bytes).unwrap(), Header::default());
    }

    #[test]
    fn annotations_merge_with_existing_ones() {
        let bytes = sample(
            Some(Header::default()),
            vec![("x-a".into(), Value::Int(1)), ("x-b".into(), Value::Int(2))],
        )
        .to_bytes();
        let out = rewrite_message(
            &bytes,
            None,
            &[
                ("x-b".into(), Value::Int(20)),
                ("x-c".into(), Value::Bool(true)),
            ],
        )
        .unwrap();
        let m = decode_message(&out).unwrap();
        assert_eq!(
            m.message_annotations,
            vec![
                ("x-a".into(), Value::Int(1)),
                ("x-b".into(), Value::Int(20)),
                ("x-c".into(), Value::Bool(true)),
            ]
        );
        assert_eq!(m.body, Body::Data(Bytes::from_static(b"payload")));
        assert_eq!(m.application_properties, vec![("k".into(), Value::Int(3))]);
    }

    #[test]
    fn annotations_are_added_without_a_section() {
        let bytes = sample(None, vec![]).to_bytes();
        let out =
            rewrite_message(&bytes, None, &[("x-opt-expired".into(), Value::Bool(true))]).unwrap();
        let m = decode_message(&out).unwrap();
        assert_eq!(
            m.message_annotations,
            vec![("x-opt-expired".into(), Value::Bool(true))]
        );
        assert_eq!(m.to.as_deref(), Some("q"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(rewrite_message(&[0x00, 0x53], None, &[]).is_err());
        assert!(rewrite_message(&[0x41, 0x41], None, &[]).is_err());
        assert!(with_delivery_count(&[0x00, 0x53, 0x70, 0xc0, 0xff], 1).is_err());
    }
}
