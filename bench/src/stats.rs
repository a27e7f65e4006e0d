//! Counters, the latency histogram, and the JSON line.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// The measured window: counts and latencies outside it are ignored.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// Wall-clock nanoseconds: senders stamp messages with it, receivers subtract it. Senders and
/// receivers run on the same machine, so the clocks agree.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Latency histogram in nanoseconds, from 1 ns to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// What one task counted inside the window.
#[derive(Debug)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub released: u64,
    pub modified: u64,
    /// When the last message counted in `received` arrived: a drain that empties the queue
    /// before the window ends is measured up to it.
    pub last_received: Option<Instant>,
    pub latency: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            sent: 0,
            received: 0,
            accepted: 0,
            rejected: 0,
            released: 0,
            modified: 0,
            last_received: None,
            latency: histogram(),
        }
    }
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.received += other.received;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.released += other.released;
        self.modified += other.modified;
        self.last_received = self.last_received.max(other.last_received);
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// The one JSON line the harness reads. `receive_span_s`: from the window's start to the
    /// last message received (0 when none was).
    pub fn json(&self, window: &Window, receivers: usize) -> String {
        let duration_s = window
            .end
            .saturating_duration_since(window.start)
            .as_secs_f64();
        let span_s = self.last_received.map_or(0.0, |t| {
            t.saturating_duration_since(window.start).as_secs_f64()
        });
        let rate = if duration_s > 0.0 {
            self.received as f64 / duration_s
        } else {
            0.0
        };
        let per_receiver = if receivers > 0 {
            rate / receivers as f64
        } else {
            0.0
        };
        let us = |q: f64| {
            if self.latency.is_empty() {
                0.0
            } else {
                self.latency.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let max_us = if self.latency.is_empty() {
            0.0
        } else {
            self.latency.max() as f64 / 1000.0
        };
        format!(
            concat!(
                "{{\"sent\":{},\"received\":{},\"accepted\":{},\"duration_s\":{:.3},",
                "\"msgs_per_sec\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},",
                "\"per_receiver_msgs_per_sec\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1},",
                "\"rejected\":{},\"released\":{},\"modified\":{},\"receive_span_s\":{:.3}}}"
            ),
            self.sent,
            self.received,
            self.accepted,
            duration_s,
            rate,
            us(0.5),
            us(0.99),
            per_receiver,
            us(0.999),
            max_us,
            self.rejected,
            self.released,
            self.modified,
            span_s,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_contract_keys_and_rates() {
        let mut a = Stats {
            sent: 10,
            received: 20,
            accepted: 10,
            ..Stats::default()
        };
        for v in [1_000u64, 2_000, 3_000] {
            a.latency.record(v).unwrap();
        }
        let mut total = Stats::default();
        total.merge(&a);
        total.merge(&a);
        let start = Instant::now();
        let window = Window {
            start,
            end: start + std::time::Duration::from_secs(2),
        };
        total.merge(&Stats {
            last_received: Some(start + std::time::Duration::from_millis(1500)),
            ..Stats::default()
        });
        let line = total.json(&window, 2);
        assert!(!line.contains('\n'));
        for key in [
            "sent",
            "received",
            "accepted",
            "duration_s",
            "msgs_per_sec",
            "p50_us",
            "p99_us",
            "per_receiver_msgs_per_sec",
        ] {
            assert!(line.contains(&format!("\"{key}\":")), "{key} in {line}");
        }
        assert!(line.contains("\"received\":40"), "{line}");
        assert!(line.contains("\"msgs_per_sec\":20.0"), "{line}");
        assert!(
            line.contains("\"per_receiver_msgs_per_sec\":10.0"),
            "{line}"
        );
        assert!(line.contains("\"p50_us\":2.0"), "{line}");
        assert!(line.contains("\"duration_s\":2.000"), "{line}");
        assert!(line.contains("\"receive_span_s\":1.500"), "{line}");
    }
}
