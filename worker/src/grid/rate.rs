//! Per-second rates for heartbeats, from counters that only grow.

use std::time::Instant;

use parking_lot::Mutex;

/// The rate of a counter between one reading and the next (one per heartbeat).
pub struct Rate(Mutex<(Instant, u64)>);

impl Rate {
    /// Starts from the counter's value now.
    pub fn starting_at(count: u64) -> Rate {
        Rate(Mutex::new((Instant::now(), count)))
    }

    /// How fast the counter, now at `count`, grew per second since the last reading.
    pub fn per_second(&self, count: u64) -> f64 {
        let mut last = self.0.lock();
        let seconds = last.0.elapsed().as_secs_f64().max(0.001);
        let rate = count.saturating_sub(last.1) as f64 / seconds;
        *last = (Instant::now(), count);
        rate
    }
}
