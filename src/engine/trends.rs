//! The recent history of every vital, for the panel's trend charts: what a panel opened in
//! the middle of a session (or reconnected after a break) needs to draw the last half hour.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::events::{TrendSeries, TrendsView};
use crate::vitals::{DeviceId, Mono, Reading, Vital};

/// How far back the trends go.
pub const TREND_WINDOW: Duration = Duration::from_secs(30 * 60);
/// At most one point per this span per series: a 1 Hz oximeter keeps every sample.
const MIN_SPACING: Duration = Duration::from_millis(500);
/// Hard bound on a series' length, whatever the device's rate.
const MAX_POINTS: usize = 2 * 30 * 60 + 16;

#[derive(Debug, Clone, Copy)]
struct Point {
    at: Mono,
    utc_ms: i64,
    /// `None` for a reading flagged or without a value: a gap in the chart.
    value: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Trends {
    series: BTreeMap<(DeviceId, Vital), VecDeque<Point>>,
}

impl Trends {
    pub fn record(&mut self, reading: &Reading) {
        let series = self
            .series
            .entry((reading.device.clone(), reading.vital))
            .or_default();
        if series
            .back()
            .is_some_and(|last| reading.received.saturating_since(last.at) < MIN_SPACING)
        {
            return;
        }
        series.push_back(Point {
            at: reading.received,
            utc_ms: reading.received_utc.timestamp_millis(),
            value: reading.clinical_value(),
        });
        while series.len() > MAX_POINTS
            || series
                .front()
                .is_some_and(|p| reading.received.saturating_since(p.at) > TREND_WINDOW)
        {
            series.pop_front();
        }
    }

    /// The points of the last `TREND_WINDOW` before `now`.
    pub fn view(&self, now: Mono, now_utc: DateTime<Utc>) -> TrendsView {
        TrendsView {
            time: now_utc,
            window_s: TREND_WINDOW.as_secs_f64(),
            series: self
                .series
                .iter()
                .map(|((device, vital), points)| TrendSeries {
                    device: device.clone(),
                    vital: *vital,
                    points: points
                        .iter()
                        .filter(|p| now.saturating_since(p.at) <= TREND_WINDOW)
                        .map(|p| (p.utc_ms, p.value))
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vitals::Quality;

    fn reading(at_ms: u64, value: f64, quality: Quality) -> Reading {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        Reading {
            device: DeviceId::new("ox1"),
            vital: Vital::Spo2,
            value: Some(value),
            quality,
            device_time: None,
            received: Mono::from_millis(at_ms),
            received_utc: t0 + chrono::Duration::milliseconds(at_ms as i64),
        }
    }

    #[test]
    fn keeps_half_an_hour_at_most_two_points_a_second_with_gaps_for_flagged_readings() {
        let mut trends = Trends::default();
        // 40 minutes of a 4 Hz device; one flagged reading at 35 min.
        for i in 0..(40 * 60 * 4) {
            let at = i * 250;
            let quality = if at == 35 * 60 * 1000 {
                Quality::ARTEFACT
            } else {
                Quality::GOOD
            };
            trends.record(&reading(at, 97.0, quality));
        }
        let now = Mono::from_millis(40 * 60 * 1000);
        let view = trends.view(now, Utc::now());
        assert_eq!(view.series.len(), 1);
        let points = &view.series[0].points;
        // Two a second over the last 30 minutes (both ends included).
        assert!((3599..=3602).contains(&points.len()), "{}", points.len());
        let first = points[0].0;
        let last = points[points.len() - 1].0;
        assert!(last - first <= 30 * 60 * 1000);
        assert!(last - first >= 30 * 60 * 1000 - 1000);
        assert_eq!(points.iter().filter(|p| p.1.is_none()).count(), 1);

        // Nothing more arrives: an hour later the trend is empty.
        let later = trends.view(Mono::from_millis(100 * 60 * 1000), Utc::now());
        assert!(later.series[0].points.is_empty());
    }
}
