//! Message selectors on receiver links: the JMS/AMQP filter `apache.org:selector-filter:string`, an SQL-92
//! subset over message properties and application properties.
//!
//! Supported: literals ('string' with '' for a quote, integers, decimals, TRUE/FALSE), identifiers
//! (application properties; `JMSMessageID`, `JMSCorrelationID`, `JMSPriority`, `JMSDeliveryMode`,
//! `JMSTimestamp`, `JMSExpiration`, `JMSType` map to the header and properties), `AND` `OR` `NOT`, comparisons
//! `= <> < > <= >=`, `+ - * /`, `IS [NOT] NULL`, `[NOT] LIKE 'p%t_rn' [ESCAPE 'c']`, `[NOT] BETWEEN a AND b`,
//! `[NOT] IN ('a', 'b')`, and parentheses. Logic is three-valued: a comparison with a missing property is
//! unknown, and a message is selected only when the whole selector is true.

mod parse;
#[cfg(test)]
mod tests;

use shoal_amqp::codec::{descriptor, Decoder};
use shoal_amqp::{Scan, Value};

/// The filter's descriptor, as a symbol and as a code.
pub(crate) const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
pub(crate) const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Lit(Val),
    Ident(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    Arith(Box<Expr>, ArithOp, Box<Expr>),
    Neg(Box<Expr>),
    IsNull(Box<Expr>, bool),
    Like {
        value: Box<Expr>,
        pattern: Vec<LikePart>,
        negated: bool,
    },
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    In {
        value: Box<Expr>,
        set: Vec<Val>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// One piece of a LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikePart {
    Char(char),
    /// `_`
    One,
    /// `%`
    Any,
}

/// A selector value: NULL is "unknown".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at {position}: {reason}")]
pub struct SelectorError {
    pub position: usize,
    pub reason: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        Ok(Selector {
            text: text.to_owned(),
            expr: parse::parse(text)?,
        })
    }

    /// The selector as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The selector named in a receiver's source filter, if any (`Err` if it does not parse).
    pub fn from_filter(
        filter: Option<&[(shoal_amqp::Symbol, Value)]>,
    ) -> Result<Option<Selector>, SelectorError> {
        let Some(filter) = filter else {
            return Ok(None);
        };
        for (_, value) in filter {
            let Value::Described(d, inner) = value else {
                continue;
            };
            let ours = match d.as_ref() {
                Value::Symbol(s) => s.as_str() == SELECTOR_FILTER,
                Value::Ulong(code) => *code == SELECTOR_FILTER_CODE,
                _ => false,
            };
            if ours {
                let text = inner.as_str().unwrap_or_default();
                return Selector::parse(text).map(Some);
            }
        }
        Ok(None)
    }

    /// Does the encoded message match? A message that cannot be read does not.
    pub fn matches(&self, message: &[u8]) -> bool {
        match Fields::read(message) {
            Some(fields) => matches!(eval(&self.expr, &fields), Val::Bool(true)),
            None => false,
        }
    }
}

/// What a selector can see of a message.
#[derive(Debug, Default)]
struct Fields {
    durable: bool,
    priority: u8,
    message_id: Option<Value>,
    correlation_id: Option<Value>,
    subject: Option<String>,
    creation_time: Option<i64>,
    absolute_expiry_time: Option<i64>,
    application: Vec<(Value, Value)>,
}

impl Fields {
    /// Header, properties and application properties; the body is never read.
    fn read(bytes: &[u8]) -> Option<Fields> {
        let header = shoal_amqp::message::read_header(bytes).ok()?;
        let info = match shoal_amqp::scan_message(bytes).ok()? {
            Scan::Complete(info) => info,
            Scan::Incomplete => return None,
        };
        let mut fields = Fields {
            durable: header.durable,
            priority: header.priority,
            message_id: info.message_id,
            correlation_id: info.correlation_id,
            subject: info.subject,
            creation_time: info.creation_time,
            absolute_expiry_time: info.absolute_expiry_time,
            application: Vec::new(),
        };
        let mut dec = Decoder::new(bytes);
        while !dec.is_empty() {
            match dec.described_header().ok()? {
                descriptor::APPLICATION_PROPERTIES => {
                    if let Value::Map(pairs) = dec.read_value().ok()? {
                        fields.application = pairs;
                    }
                    break;
                }
                descriptor::HEADER
                | descriptor::DELIVERY_ANNOTATIONS
                | descriptor::MESSAGE_ANNOTATIONS
                | descriptor::PROPERTIES => dec.skip_value().ok()?,
                // The body (or a footer): application properties come before it.
                _ => break,
            }
        }
        Some(fields)
    }

    fn get(&self, name: &str) -> Val {
        let opt_str = |s: &Option<String>| s.clone().map_or(Val::Null, Val::Str);
        let time = |t: Option<i64>| t.map_or(Val::Null, Val::Int);
        match name {
            "JMSMessageID" => self.message_id.as_ref().map_or(Val::Null, id_val),
            "JMSCorrelationID" => self.correlation_id.as_ref().map_or(Val::Null, id_val),
            "JMSPriority" => Val::Int(i64::from(self.priority)),
            "JMSDeliveryMode" => Val::Str(
                if self.durable {
                    "PERSISTENT"
                } else {
                    "NON_PERSISTENT"
                }
                .into(),
            ),
            "JMSTimestamp" => time(self.creation_time),
            "JMSExpiration" => time(self.absolute_expiry_time),
            "JMSType" => opt_str(&self.subject),
            _ => self
                .application
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map_or(Val::Null, |(_, v)| from_value(v)),
        }
    }
}

fn id_val(v: &Value) -> Val {
    match v {
        Value::String(s) => Val::Str(s.clone()),
        other => from_value(other),
    }
}

fn from_value(v: &Value) -> Val {
    match v {
        Value::Bool(b) => Val::Bool(*b),
        Value::Ubyte(n) => Val::Int(i64::from(*n)),
        Value::Ushort(n) => Val::Int(i64::from(*n)),
        Value::Uint(n) => Val::Int(i64::from(*n)),
        Value::Ulong(n) => i64::try_from(*n).map_or(Val::Float(*n as f64), Val::Int),
        Value::Byte(n) => Val::Int(i64::from(*n)),
        Value::Short(n) => Val::Int(i64::from(*n)),
        Value::Int(n) => Val::Int(i64::from(*n)),
        Value::Long(n) => Val::Int(*n),
        Value::Timestamp(n) => Val::Int(*n),
        Value::Float(f) => Val::Float(f64::from(*f)),
        Value::Double(f) => Val::Float(*f),
        Value::String(s) => Val::Str(s.clone()),
        Value::Symbol(s) => Val::Str(s.as_str().to_owned()),
        Value::Char(c) => Val::Str(c.to_string()),
        _ => Val::Null,
    }
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Int(n) => Some(*n as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    }
}

fn compare(a: &Val, op: CmpOp, b: &Val) -> Val {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Val::Null, _) | (_, Val::Null) => return Val::Null,
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Str(x), Val::Str(y)) => match op {
            // Strings and booleans only compare for (in)equality.
            CmpOp::Eq | CmpOp::Ne => x.cmp(y),
            _ => return Val::Null,
        },
        (Val::Bool(x), Val::Bool(y)) => match op {
            CmpOp::Eq | CmpOp::Ne => x.cmp(y),
            _ => return Val::Null,
        },
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => match x.partial_cmp(&y) {
                Some(o) => o,
                None => return Val::Bool(false),
            },
            // Different kinds never match.
            _ => return Val::Bool(matches!(op, CmpOp::Ne)),
        },
    };
    Val::Bool(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

fn arith(a: &Val, op: ArithOp, b: &Val) -> Val {
    if let (Val::Int(x), Val::Int(y)) = (a, b) {
        let r = match op {
            ArithOp::Add => x.checked_add(*y),
            ArithOp::Sub => x.checked_sub(*y),
            ArithOp::Mul => x.checked_mul(*y),
            ArithOp::Div => x.checked_div(*y),
        };
        return r.map_or(Val::Null, Val::Int);
    }
    match (num(a), num(b)) {
        (Some(x), Some(y)) => Val::Float(match op {
            ArithOp::Add => x + y,
            ArithOp::Sub => x - y,
            ArithOp::Mul => x * y,
            ArithOp::Div => x / y,
        }),
        _ => Val::Null,
    }
}

fn not(v: Val) -> Val {
    match v {
        Val::Bool(b) => Val::Bool(!b),
        _ => Val::Null,
    }
}

/// LIKE by dynamic programming over (pattern position, text position): linear in their product whatever the
/// pattern (a backtracking match can take exponential time on `%a%a%a%b`).
fn like(text: &[char], pattern: &[LikePart]) -> bool {
    // reach[j]: the pattern's first i parts can match the text's first j chars.
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for part in pattern {
        let mut next = vec![false; text.len() + 1];
        match part {
            LikePart::Any => {
                let mut seen = false;
                for j in 0..=text.len() {
                    seen |= reach[j];
                    next[j] = seen;
                }
            }
            LikePart::One => next[1..].copy_from_slice(&reach[..text.len()]),
            LikePart::Char(c) => {
                for j in 1..=text.len() {
                    next[j] = reach[j - 1] && text[j - 1] == *c;
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

fn eval(e: &Expr, f: &Fields) -> Val {
    match e {
        Expr::Lit(v) => v.clone(),
        Expr::Ident(name) => f.get(name),
        Expr::Not(x) => not(eval(x, f)),
        Expr::And(a, b) => match (eval(a, f), eval(b, f)) {
            (Val::Bool(false), _) | (_, Val::Bool(false)) => Val::Bool(false),
            (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
            _ => Val::Null,
        },
        Expr::Or(a, b) => match (eval(a, f), eval(b, f)) {
            (Val::Bool(true), _) | (_, Val::Bool(true)) => Val::Bool(true),
            (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
            _ => Val::Null,
        },
        Expr::Cmp(a, op, b) => compare(&eval(a, f), *op, &eval(b, f)),
        Expr::Arith(a, op, b) => arith(&eval(a, f), *op, &eval(b, f)),
        Expr::Neg(x) => match eval(x, f) {
            Val::Int(n) => n.checked_neg().map_or(Val::Null, Val::Int),
            Val::Float(x) => Val::Float(-x),
            _ => Val::Null,
        },
        Expr::IsNull(x, negated) => Val::Bool((eval(x, f) == Val::Null) != *negated),
        Expr::Like {
            value,
            pattern,
            negated,
        } => match eval(value, f) {
            Val::Str(s) => {
                let chars: Vec<char> = s.chars().collect();
                Val::Bool(like(&chars, pattern) != *negated)
            }
            _ => Val::Null,
        },
        Expr::Between {
            value,
            low,
            high,
            negated,
        } => {
            let v = eval(value, f);
            let inside = match (
                compare(&v, CmpOp::Ge, &eval(low, f)),
                compare(&v, CmpOp::Le, &eval(high, f)),
            ) {
                (Val::Bool(a), Val::Bool(b)) => Val::Bool(a && b),
                (Val::Bool(false), _) | (_, Val::Bool(false)) => Val::Bool(false),
                _ => Val::Null,
            };
            if *negated {
                not(inside)
            } else {
                inside
            }
        }
        Expr::In {
            value,
            set,
            negated,
        } => match eval(value, f) {
            Val::Str(s) => {
                let found = set.iter().any(|v| matches!(v, Val::Str(x) if *x == s));
                Val::Bool(found != *negated)
            }
            _ => Val::Null,
        },
    }
}
