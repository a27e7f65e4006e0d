//! The request-id table of Hono's command & control: a command with a `reply-to` goes to the device under a
//! short request id; the device's response names that id, and the gateway sends the response to the stored
//! `reply-to` with the stored correlation-id. Bounded: when full, the oldest request is forgotten (its response
//! is then refused, as Hono does once a command's time-out passed).

use std::collections::{HashMap, VecDeque};

use shoal_amqp::Value;

pub(super) struct CommandTable {
    pending: HashMap<String, (String, Value)>,
    order: VecDeque<String>,
    next: u64,
    max: usize,
}

impl CommandTable {
    pub fn new(max: usize) -> CommandTable {
        CommandTable {
            pending: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            max: max.max(1),
        }
    }

    /// Remember a request; returns its id (short: base 36 of a per-connection counter).
    pub fn insert(&mut self, reply_to: String, correlation: Value) -> String {
        while self.order.len() >= self.max {
            if let Some(old) = self.order.pop_front() {
                self.pending.remove(&old);
            }
        }
        self.next += 1;
        let id = base36(self.next);
        self.pending.insert(id.clone(), (reply_to, correlation));
        self.order.push_back(id.clone());
        id
    }

    /// The reply-to and correlation-id of a request, forgotten once answered.
    pub fn take(&mut self, id: &str) -> Option<(String, Value)> {
        let found = self.pending.remove(id)?;
        self.order.retain(|o| o != id);
        Some(found)
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_back_once_and_the_table_is_bounded() {
        let mut t = CommandTable::new(2);
        let a = t.insert("r/a".into(), Value::from("c1"));
        let b = t.insert("r/b".into(), Value::from("c2"));
        assert_ne!(a, b);
        assert_eq!(t.take(&b), Some(("r/b".into(), Value::from("c2"))));
        assert_eq!(t.take(&b), None, "answered once");
        let c = t.insert("r/c".into(), Value::from("c3"));
        let d = t.insert("r/d".into(), Value::from("c4"));
        assert_eq!(t.take(&a), None, "the oldest was forgotten");
        assert!(t.take(&c).is_some() && t.take(&d).is_some());
        assert_eq!(base36(36 * 36), "100");
    }
}
