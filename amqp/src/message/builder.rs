//! Whole-message encoding ([`MessageBuilder`]) and decoding ([`decode_message`]), for clients,
//! tools and tests. The router does not use these.

use bytes::{Bytes, BytesMut};

use super::sections::{Header, Properties};
use crate::codec::code::{MAP32, MAP8, NULL};
use crate::codec::{
    descriptor as desc, put_binary, put_descriptor, put_fields, put_null, put_string, put_value,
    CompoundWriter, Decoder, FieldReader,
};
use crate::error::DecodeError;
use crate::types::{Descriptor, Symbol, Value};

/// A message body.
///
/// `Empty` is encoded as an `amqp-value` section holding `null` (the spec requires a body), and
/// an `amqp-value` of `null` decodes back to `Empty`.
#[derive(Default, Debug, Clone, PartialEq)]
pub enum Body {
    #[default]
    Empty,
    /// One `data` section (several `data` sections decode into their concatenation).
    Data(Bytes),
    /// An `amqp-value` section (`amqp-sequence` sections decode as a `Value::List`).
    Value(Value),
}

/// Builder for encoding a whole message (used by the client and load tool; not on the router's
/// path).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct MessageBuilder {
    pub header: Option<Header>,
    pub message_id: Option<Value>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Option<String>,
    pub correlation_id: Option<Value>,
    pub content_type: Option<Symbol>,
    pub creation_time: Option<i64>,
    pub absolute_expiry_time: Option<i64>,
    pub application_properties: Vec<(String, Value)>,
    pub message_annotations: Vec<(Symbol, Value)>,
    pub body: Body,
}

impl MessageBuilder {
    fn properties(&self) -> Properties {
        Properties {
            message_id: self.message_id.clone(),
            to: self.to.clone(),
            subject: self.subject.clone(),
            reply_to: self.reply_to.clone(),
            correlation_id: self.correlation_id.clone(),
            content_type: self.content_type.clone(),
            creation_time: self.creation_time,
            absolute_expiry_time: self.absolute_expiry_time,
            ..Properties::default()
        }
    }

    /// Appends the encoded message: header, message-annotations, properties,
    /// application-properties and body sections (empty ones are left out).
    pub fn encode(&self, buf: &mut BytesMut) {
        if let Some(h) = &self.header {
            h.encode(buf);
        }
        if !self.message_annotations.is_empty() {
            put_descriptor(buf, desc::MESSAGE_ANNOTATIONS);
            put_fields(buf, &self.message_annotations);
        }
        let props = self.properties();
        if !props.is_empty() {
            props.encode(buf);
        }
        if !self.application_properties.is_empty() {
            put_descriptor(buf, desc::APPLICATION_PROPERTIES);
            let mut w = CompoundWriter::begin(buf, MAP32);
            for (k, v) in &self.application_properties {
                w.item(buf, |b| put_string(b, k));
                w.item(buf, |b| put_value(b, v));
            }
            w.finish(buf);
        }
        match &self.body {
            Body::Empty => {
                put_descriptor(buf, desc::AMQP_VALUE);
                put_null(buf);
            }
            Body::Data(d) => {
                put_descriptor(buf, desc::DATA);
                put_binary(buf, d);
            }
            Body::Value(v) => {
                put_descriptor(buf, desc::AMQP_VALUE);
                put_value(buf, v);
            }
        }
    }

    /// The encoded message as `Bytes`.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// Full decode of a message for tests/clients: properties, application properties (keys must
/// be strings), message annotations (symbol keys; others are dropped) and body. Delivery
/// annotations and footer are skipped. Not used by the router.
pub fn decode_message(bytes: &[u8]) -> Result<MessageBuilder, DecodeError> {
    let mut dec = Decoder::new(bytes);
    let mut m = MessageBuilder::default();
    let mut data: Option<BytesMut> = None;
    let mut sequence: Option<Vec<Value>> = None;
    while !dec.is_empty() {
        let code = dec.described_header()?;
        match code {
            desc::HEADER => m.header = Some(Header::decode(&mut FieldReader::new(&mut dec)?)?),
            desc::DELIVERY_ANNOTATIONS | desc::FOOTER => dec.skip_value()?,
            desc::MESSAGE_ANNOTATIONS => {
                m.message_annotations = map_section(&mut dec)?
                    .into_iter()
                    .filter_map(|(k, v)| match k {
                        Value::Symbol(s) => Some((s, v)),
                        _ => None,
                    })
                    .collect();
            }
            desc::PROPERTIES => {
                let p = Properties::decode(&mut FieldReader::new(&mut dec)?)?;
                m.message_id = p.message_id;
                m.to = p.to;
                m.subject = p.subject;
                m.reply_to = p.reply_to;
                m.correlation_id = p.correlation_id;
                m.content_type = p.content_type;
                m.creation_time = p.creation_time;
                m.absolute_expiry_time = p.absolute_expiry_time;
            }
            desc::APPLICATION_PROPERTIES => {
                m.application_properties = map_section(&mut dec)?
                    .into_iter()
                    .map(|(k, v)| match k {
                        Value::String(s) => Ok((s, v)),
                        _ => Err(DecodeError::InvalidValue("application-properties key")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            desc::DATA => {
                let code = dec.read_u8()?;
                let chunk = dec.binary_of(code)?;
                data.get_or_insert_with(BytesMut::new)
                    .extend_from_slice(&chunk);
            }
            desc::AMQP_SEQUENCE => match dec.read_value()? {
                Value::List(items) => sequence.get_or_insert_with(Vec::new).extend(items),
                _ => return Err(DecodeError::InvalidValue("amqp-sequence")),
            },
            desc::AMQP_VALUE => {
                m.body = match dec.read_value()? {
                    Value::Null => Body::Empty,
                    v => Body::Value(v),
                };
            }
            other => return Err(DecodeError::UnknownDescriptor(Descriptor::Code(other))),
        }
    }
    if let Some(d) = data {
        m.body = Body::Data(d.freeze());
    } else if let Some(items) = sequence {
        m.body = Body::Value(Value::List(items));
    }
    Ok(m)
}

/// An annotations/application-properties map (null reads as an empty map).
fn map_section(dec: &mut Decoder<'_>) -> Result<Vec<(Value, Value)>, DecodeError> {
    let code = dec.read_u8()?;
    match code {
        NULL => Ok(Vec::new()),
        MAP8 | MAP32 => match dec.read_value_of(code)? {
            Value::Map(pairs) => Ok(pairs),
            _ => Ok(Vec::new()),
        },
        _ => Err(DecodeError::UnexpectedType {
            expected: "map",
            found: code,
        }),
    }
}
