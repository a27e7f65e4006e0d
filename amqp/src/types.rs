//! The AMQP type system (spec section 1): symbols, the generic [`Value`] and `fields`.

use std::fmt;

use bytes::Bytes;

/// An AMQP `symbol`: an ASCII identifier (conditions, capabilities, annotation keys...).
///
/// Symbols are only ASCII on the wire; we still store a `String` so that a peer sending a
/// non-ASCII symbol is tolerated rather than rejected (the router never interprets them).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Symbol(pub String);

impl Symbol {
    /// Builds a symbol from anything string-like.
    pub fn new(s: impl Into<String>) -> Self {
        Symbol(s.into())
    }

    /// The symbol's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Self {
        Symbol(s.to_owned())
    }
}

impl From<String> for Symbol {
    fn from(s: String) -> Self {
        Symbol(s)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A generic AMQP value, for fields the router does not interpret (properties maps, filters,
/// error info...).
///
/// Encoding picks the most compact form (e.g. `Uint(0)` becomes `uint0`). `Array` elements must
/// all be of the same kind as the first one: an element of another kind is encoded as the zero
/// value of the first element's kind, because an AMQP array has a single element constructor.
/// Decoding refuses arrays that claim more elements than they have bytes (only possible with
/// zero-width elements such as `null`), so a few bytes cannot expand into huge vectors; in
/// practice this means arrays of `Null` cannot be decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Decimal32([u8; 4]),
    Decimal64([u8; 8]),
    Decimal128([u8; 16]),
    Char(char),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
    Binary(Bytes),
    String(String),
    Symbol(Symbol),
    List(Vec<Value>),
    /// Maps keep their wire order and may hold duplicate keys: we never need lookups on them.
    Map(Vec<(Value, Value)>),
    Array(Vec<Value>),
    /// `Described(descriptor, value)`.
    Described(Box<Value>, Box<Value>),
}

impl Value {
    /// The string content of a `String` or `Symbol` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Symbol(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// True for `Value::Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Symbol> for Value {
    fn from(s: Symbol) -> Self {
        Value::Symbol(s)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Uint(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Ulong(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Long(v)
    }
}

impl From<Bytes> for Value {
    fn from(v: Bytes) -> Self {
        Value::Binary(v)
    }
}

/// The spec's `fields`: a map with symbol keys, kept in wire order.
pub type Fields = Vec<(Symbol, Value)>;

/// A descriptor of a described type: a numeric code (`domain << 32 | id`) or a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Descriptor {
    Code(u64),
    Symbol(Symbol),
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Descriptor::Code(c) => write!(f, "0x{c:016x}"),
            Descriptor::Symbol(s) => f.write_str(s.as_str()),
        }
    }
}
