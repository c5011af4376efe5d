//! The daemon's clock: monotonic time for logic and the matching UTC time for records.
//!
//! One clock serves the whole daemon so that a demo or test run at `--speed N` stays
//! consistent: the simulator, the alarm delays and the recorded timestamps all run N times
//! faster together. UTC is derived from the UTC at start plus monotonic elapsed time, so a
//! wall-clock step (NTP, a nurse changing the time) never reorders records.
//!
//! A daemon resuming a session starts its UTC after the session's last record
//! ([`Clock::resuming`]): if the system clock reads earlier than that record (stepped back
//! while the daemon was down, or the last run ran at `--speed`), the daemon's UTC starts
//! [`RESUME_STEP`] after the record instead, so the resumed session's records stay in time
//! order; it then runs ahead of the system clock for the whole run, and the restart's gap says
//! so.
//!
//! It is built on `tokio::time::Instant`, so tests under `tokio::time::pause` run in virtual time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::vitals::Mono;

/// How far after a session's last record a resuming daemon whose system clock reads earlier
/// starts its UTC: the restart's gap is at least this long.
pub const RESUME_STEP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Clock {
    origin: Instant,
    origin_utc: DateTime<Utc>,
    speed: f64,
    /// How far the system clock read behind the session's last record at start, when it did.
    behind_record: Option<chrono::TimeDelta>,
}

impl Clock {
    /// A clock starting now and running `speed` times faster than real time (1.0 in production).
    pub fn start(speed: f64) -> Self {
        Clock::resuming(speed, None)
    }

    /// A clock starting now for a daemon that resumes a session whose latest record is at
    /// `last_record` (`None`: nothing to resume): its UTC starts at the system clock's, or
    /// [`RESUME_STEP`] after `last_record` when the system clock does not read later than it.
    pub fn resuming(speed: f64, last_record: Option<DateTime<Utc>>) -> Self {
        Clock::starting_at(speed, Utc::now(), last_record)
    }

    /// [`Clock::resuming`] with the system clock reading `wall`.
    pub fn starting_at(
        speed: f64,
        wall: DateTime<Utc>,
        last_record: Option<DateTime<Utc>>,
    ) -> Self {
        let (origin_utc, behind_record) = match last_record {
            Some(last) if wall <= last => {
                let step = chrono::TimeDelta::from_std(RESUME_STEP).unwrap_or_default();
                (
                    last.checked_add_signed(step).unwrap_or(last),
                    Some(last.signed_duration_since(wall)),
                )
            }
            _ => (wall, None),
        };
        Clock {
            origin: Instant::now(),
            origin_utc,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            behind_record,
        }
    }

    /// How far the system clock read behind the resumed session's last record when this clock
    /// started (`None` when it did not): this clock then runs that far plus [`RESUME_STEP`]
    /// ahead of the system clock.
    pub fn behind_record(&self) -> Option<chrono::TimeDelta> {
        self.behind_record
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

    #[tokio::test(start_paused = true)]
    async fn a_clock_behind_the_last_record_starts_just_after_it_and_keeps_records_in_order() {
        let last = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let hour = chrono::TimeDelta::hours(1);
        let step = chrono::TimeDelta::from_std(RESUME_STEP).expect("a step");

        // The system clock reads an hour before the last record: the daemon's UTC starts one
        // step after the record, and says how far behind the system clock was.
        let clock = Clock::starting_at(1.0, last - hour, Some(last));
        assert_eq!(clock.utc_at(Mono::ZERO), last + step);
        assert_eq!(clock.behind_record(), Some(hour));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            clock.utc_at(clock.now()),
            last + step + chrono::TimeDelta::seconds(5)
        );
        // Exactly at the record is behind too: the next record must come after it.
        let clock = Clock::starting_at(1.0, last, Some(last));
        assert_eq!(clock.utc_at(Mono::ZERO), last + step);
        assert_eq!(clock.behind_record(), Some(chrono::TimeDelta::zero()));

        // A system clock after the record (the usual restart), or nothing to resume: the
        // daemon's UTC is the system clock's.
        let later = last + chrono::TimeDelta::milliseconds(1);
        let clock = Clock::starting_at(1.0, later, Some(last));
        assert_eq!(clock.utc_at(Mono::ZERO), later);
        assert_eq!(clock.behind_record(), None);
        let clock = Clock::starting_at(1.0, last - hour, None);
        assert_eq!(clock.utc_at(Mono::ZERO), last - hour);
        assert_eq!(clock.behind_record(), None);
    }

    #[test]
    fn a_nonsense_speed_falls_back_to_real_time() {
        assert_eq!(Clock::start(0.0).speed(), 1.0);
        assert_eq!(Clock::start(f64::NAN).speed(), 1.0);
    }
}
