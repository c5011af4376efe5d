//! The daemon's clock: monotonic time for logic and the matching UTC time for records.
//!
//! One clock serves the whole daemon so that a demo or test run at `--speed N` stays
//! consistent: the simulator, the alarm delays and the recorded timestamps all run N times
//! faster together. UTC is derived from the UTC at start plus monotonic elapsed time, so a
//! wall-clock step (NTP, a nurse changing the time) never reorders records.
//!
//! It is built on `tokio::time::Instant`, so tests under `tokio::time::pause` run in virtual time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::vitals::Mono;

#[derive(Debug, Clone)]
pub struct Clock {
    origin: Instant,
    origin_utc: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    /// A clock starting now and running `speed` times faster than real time (1.0 in production).
    pub fn start(speed: f64) -> Self {
        Clock {
            origin: Instant::now(),
            origin_utc: Utc::now(),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn now(&self) -> Mono {
        Mono::from_secs_f64(self.origin.elapsed().as_secs_f64() * self.speed)
    }

    pub fn utc_at(&self, t: Mono) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(t.since_start()).unwrap_or(chrono::Duration::MAX);
        self.origin_utc
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The real time that `span` of daemon time takes.
    pub fn real(&self, span: Duration) -> Duration {
        span.div_f64(self.speed)
    }

    /// Sleeps until the daemon clock reads `t` (at once if it already has).
    pub async fn sleep_until(&self, t: Mono) {
        let deadline = self.origin + self.real(t.since_start());
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fast_clock_runs_fast_in_virtual_time() {
        let clock = Clock::start(60.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = clock.now();
        assert!(
            (now.since_start().as_secs_f64() - 60.0).abs() < 0.01,
            "{now:?}"
        );
        let utc = clock.utc_at(now);
        assert_eq!((utc - clock.utc_at(Mono::ZERO)).num_seconds(), 60);
        clock.sleep_until(Mono::from_secs_f64(120.0)).await;
        assert!(clock.now() >= Mono::from_secs_f64(120.0));
    }

    #[test]
    fn a_nonsense_speed_falls_back_to_real_time() {
        assert_eq!(Clock::start(0.0).speed(), 1.0);
        assert_eq!(Clock::start(f64::NAN).speed(), 1.0);
    }
}
