//! Retained messages, kept by the gateway (bounded by count and payload bytes) and shared by its connections.

use std::sync::Arc;

use bytes::Bytes;
use shoal_mqtt::{MqttStr, Properties, QoS, RetainTree};

/// One retained message as it will be republished: topic, payload, QoS and the MQTT 5 properties that travel
/// with a message.
#[derive(Debug)]
pub struct RetainedMsg {
    pub topic: MqttStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub properties: Properties,
}

/// The retained messages of plain topics.
#[derive(Debug)]
pub struct Retained {
    tree: RetainTree<Arc<RetainedMsg>>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl Retained {
    pub fn new(max_count: usize, max_bytes: usize) -> Retained {
        Retained {
            tree: RetainTree::new(),
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    /// Store (or, with an empty payload, delete) the retained message of a topic. `false`: over a limit, not
    /// stored (the previous one, if any, is gone: a newer message replaced it in the client's intent).
    pub fn set(&mut self, msg: RetainedMsg) -> bool {
        let topic = msg.topic.as_str().to_owned();
        if let Some(old) = self.tree.remove(&topic) {
            self.bytes -= old.payload.len();
        }
        if msg.payload.is_empty() {
            return true;
        }
        if self.tree.len() >= self.max_count || self.bytes + msg.payload.len() > self.max_bytes {
            return false;
        }
        let len = msg.payload.len();
        match self.tree.insert(&topic, Arc::new(msg)) {
            Ok(_) => {
                self.bytes += len;
                true
            }
            Err(_) => false,
        }
    }

    /// The retained messages whose topics match `filter`.
    pub fn matching(&self, filter: &str) -> Vec<Arc<RetainedMsg>> {
        let mut out = Vec::new();
        self.tree
            .for_each_match(filter, |m| out.push(Arc::clone(m)));
        out
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, payload: &'static [u8]) -> RetainedMsg {
        RetainedMsg {
            topic: MqttStr::new(topic).unwrap(),
            payload: Bytes::from_static(payload),
            qos: QoS::AtLeastOnce,
            properties: Properties::default(),
        }
    }

    #[test]
    fn set_replace_delete_and_match() {
        let mut r = Retained::new(10, 100);
        assert!(r.set(msg("a/b", b"1")));
        assert!(r.set(msg("a/c", b"22")));
        assert!(r.set(msg("a/b", b"333")));
        assert_eq!(r.len(), 2);
        let mut got: Vec<_> = r
            .matching("a/+")
            .iter()
            .map(|m| m.payload.clone())
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![Bytes::from_static(b"22"), Bytes::from_static(b"333")]
        );
        assert!(r.set(msg("a/b", b"")));
        assert_eq!(r.len(), 1);
        assert_eq!(r.bytes, 2);
        assert!(r.matching("x/#").is_empty());
    }

    #[test]
    fn limits_hold() {
        let mut r = Retained::new(2, 5);
        assert!(r.set(msg("a", b"123")));
        assert!(!r.set(msg("b", b"456")), "over the byte limit");
        assert!(r.set(msg("b", b"45")));
        assert!(!r.set(msg("c", b"")) || r.len() == 2);
        assert!(!r.set(msg("c", b"1")), "over the count limit");
        assert_eq!(r.len(), 2);
    }
}
