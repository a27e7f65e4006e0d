//! Wall-clock milliseconds (what message TTLs and the store's deadlines are in) derived from tokio's clock, so
//! that tests with paused time move TTLs forward with `tokio::time::advance`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// About thirty years.
const MAX_AHEAD_MS: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base_ms: u64,
    base: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            base_ms,
            base: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.base.elapsed().as_millis() as u64
    }

    /// The tokio instant of a wall-clock deadline (now for one already past).
    pub fn instant_of(&self, ms: u64) -> Instant {
        // Far-future deadlines (a hostile absolute-expiry-time) are capped so the addition cannot overflow.
        let offset = ms.saturating_sub(self.base_ms).min(MAX_AHEAD_MS);
        self.base + Duration::from_millis(offset)
    }
}
