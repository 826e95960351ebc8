//! Per-tenant ingest limits: a token bucket of events.
//!
//! One event costs one token; tokens refill at `events_per_second` up to `burst`. HTTP asks
//! [`RateLimiter::try_take`] and answers 429 with the wait it returns; a syslog stream takes
//! its batch with [`RateLimiter::take`] and pauses for the wait, so TCP flow control slows the
//! sender and nothing is lost.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter {
    events_per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// May go below zero: a stream that took more than was there owes it.
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// A full bucket. `burst` is at least one second's worth and at least one event.
    pub fn new(events_per_second: u64, burst: u64, now: Instant) -> RateLimiter {
        let events_per_second = events_per_second.max(1) as f64;
        let burst = (burst as f64).max(events_per_second).max(1.0);
        RateLimiter {
            events_per_second,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                refilled_at: now,
            }),
        }
    }

    pub fn events_per_second(&self) -> u64 {
        self.events_per_second as u64
    }

    pub fn burst(&self) -> u64 {
        self.burst as u64
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.events_per_second).min(self.burst);
        bucket.refilled_at = now;
    }

    fn wait_for(&self, missing: f64) -> Duration {
        Duration::from_secs_f64((missing / self.events_per_second).max(0.0))
    }

    /// Takes `events` tokens if they are there, else takes nothing and says how long until
    /// they will be. A request larger than the burst goes through once the bucket is full
    /// (and leaves it owing the rest), so no request is refused forever.
    pub fn try_take(&self, events: u64, now: Instant) -> Result<(), Duration> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut bucket, now);
        let needed = (events as f64).min(self.burst);
        if bucket.tokens >= needed {
            bucket.tokens -= events as f64;
            Ok(())
        } else {
            Err(self.wait_for(needed - bucket.tokens))
        }
    }

    /// Takes `events` tokens whether or not they are there and returns how long the caller
    /// should pause so that its rate stays within the limit (zero when it is within).
    pub fn take(&self, events: u64, now: Instant) -> Duration {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut bucket, now);
        bucket.tokens -= events as f64;
        self.wait_for(-bucket.tokens)
    }

    /// Gives back tokens taken for events that were then not accepted.
    pub fn refund(&self, events: u64) {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        bucket.tokens = (bucket.tokens + events as f64).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_within_the_burst_pass_then_wait_for_the_refill() {
        let start = Instant::now();
        let limiter = RateLimiter::new(10, 20, start);
        assert_eq!(limiter.try_take(15, start), Ok(()));
        // 5 left; 10 more need half a second of refill.
        assert_eq!(limiter.try_take(10, start), Err(Duration::from_millis(500)));
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.try_take(10, later), Ok(()));
        // Refused requests took nothing.
        assert_eq!(limiter.try_take(1, later), Err(Duration::from_millis(100)));
        limiter.refund(1);
        assert_eq!(limiter.try_take(1, later), Ok(()));
    }

    #[test]
    fn a_request_over_the_burst_passes_on_a_full_bucket_and_leaves_a_debt() {
        let start = Instant::now();
        let limiter = RateLimiter::new(10, 10, start);
        assert_eq!(limiter.try_take(30, start), Ok(()));
        // Owes 20: the next event waits for 21 tokens' worth of time.
        assert_eq!(limiter.try_take(1, start), Err(Duration::from_millis(2100)));
    }

    #[test]
    fn streams_are_paced_not_refused() {
        let start = Instant::now();
        let limiter = RateLimiter::new(100, 100, start);
        assert_eq!(limiter.take(100, start), Duration::ZERO);
        assert_eq!(limiter.take(50, start), Duration::from_millis(500));
        // After the pause the debt is paid.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take(0, later), Duration::ZERO);
    }

    #[test]
    fn the_burst_is_at_least_one_second_of_rate() {
        let limiter = RateLimiter::new(50, 0, Instant::now());
        assert_eq!((limiter.events_per_second(), limiter.burst()), (50, 50));
    }
}
