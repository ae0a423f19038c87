//! Chat sends per user, whatever the edge (`chat:send`, `POST /v1/chat`): a token bucket of
//! `per_hour` tokens refilled evenly over the hour (so a user may send a burst of `per_hour`,
//! then one every `3600 / per_hour` s). Per process: with several instances a user's budget
//! is per instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::values::UserId;

/// Buckets kept before full ones are swept away.
const SWEEP_AT: usize = 10_000;

pub struct RateLimiter {
    per_hour: u32,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_hour = 0`: unlimited.
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            buckets: Mutex::default(),
        }
    }

    /// Takes one token; when there is none, how long until there is.
    pub fn check(&self, user: &UserId) -> Result<(), Duration> {
        self.check_at(user, Instant::now())
    }

    fn check_at(&self, user: &UserId, now: Instant) -> Result<(), Duration> {
        if self.per_hour == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_hour);
        let rate = capacity / 3600.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(user.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled =
            bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = refilled.min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(3);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&alice, t0).is_ok());
        }
        let wait = limiter.check_at(&alice, t0).unwrap_err();
        assert!((1199..=1200).contains(&wait.as_secs()), "{wait:?}");
        assert!(limiter.check_at(&bob, t0).is_ok(), "budgets are per user");
        assert!(
            limiter
                .check_at(&alice, t0 + Duration::from_secs(1201))
                .is_ok()
        );
        assert!(
            limiter
                .check_at(&alice, t0 + Duration::from_secs(1202))
                .is_err()
        );
        assert!(RateLimiter::new(0).check_at(&alice, t0).is_ok());
    }
}
