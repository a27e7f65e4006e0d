//! Counters per queue, and the snapshot [`crate::BrokerHandle::stats`] returns.

/// Running totals of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Messages that entered the queue (sent to it, or to its topic).
    pub enqueued: u64,
    /// Deliveries to consumers (redeliveries included; browsing not).
    pub delivered: u64,
    /// Messages consumed (accepted).
    pub acked: u64,
    /// Messages that expired (moved to the expiry address, or dropped when there is none).
    pub expired: u64,
    /// Messages rejected or out of delivery attempts (moved to the dead-letter address, or dropped when there
    /// is none).
    pub dead_lettered: u64,
    /// Of the expired and dead-lettered, those dropped because there was nowhere to move them.
    pub dropped: u64,
    /// Deliveries that came back (released, modified).
    pub redelivered: u64,
}

/// One queue (a queue address, or a topic's subscription) right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The store name: the address of a queue or declared subscription, `topic::subscription` otherwise.
    pub name: String,
    /// For subscriptions, their topic.
    pub topic: Option<String>,
    /// Messages held: ready + unacked + delayed + paged out.
    pub depth: u64,
    /// Ready in memory.
    pub ready: u64,
    pub unacked: u64,
    /// Waiting out a redelivery delay.
    pub delayed: u64,
    /// In the store only (an estimate after a restart).
    pub paged: u64,
    pub bytes: u64,
    pub consumers: usize,
    pub producers: usize,
    pub durable: bool,
    pub counters: QueueCounters,
}

/// Every queue, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub queues: Vec<QueueStats>,
    /// Connections to the broker.
    pub connections: usize,
    /// Links attached.
    pub links: usize,
}

impl BrokerStats {
    pub fn queue(&self, name: &str) -> Option<&QueueStats> {
        self.queues.iter().find(|q| q.name == name)
    }
}
