//! The recorder sink: a thread that owns the store and writes what the engine task hands it.
//!
//! The engine task converts its events into [`Record`]s ([`records_of`]) and queues them on a
//! bounded channel without ever blocking (`try_send`); the thread writes them in batches, one
//! transaction each, at most [`BATCH_WINDOW`] after the first record of a batch, so committed
//! data trails the engine by well under a second while the disk keeps up; [`Progress`] says by
//! how much it trails (the engine raises recording failure past `RECORDING_LAG_LIMIT`). When a write fails (disk full, database
//! locked or corrupt) the thread keeps the batch, reports [`Health::Failing`] (the engine
//! raises the recording-failure technical alarm), and retries every [`RETRY`] until it works;
//! then it reports [`Health::Recording`] again. Monitoring never waits for the disk.
//!
//! What it cannot keep (the pending backlog past [`MAX_PENDING`], or a full queue) is lost,
//! and recorded as a gap when recording resumes, so the record says what is missing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::record::{AlarmRecord, ReadingRecord, Record};
use super::{Store, StoreError};
use crate::engine::Change;
use crate::events::{Event, SessionChange};
use crate::vitals::{Phase, SessionId};

/// A batch is written at most this long after its first record.
pub const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// Records in one transaction at the most.
const BATCH_MAX: usize = 5_000;
/// While writing fails, how often to try again.
pub const RETRY: Duration = Duration::from_secs(1);
/// Records kept in memory while writing fails: about 9 hours of one oximeter and a cuff.
const MAX_PENDING: usize = 100_000;
/// Records queued between the engine task and the thread.
const QUEUE: usize = 50_000;

/// Whether recording works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Recording,
    /// Writing fails; why, for the technical alarm.
    Failing(String),
}

/// The engine task's end of the recorder.
pub struct RecorderSink {
    /// Each record with when it was queued, so the lag counts its wait in the queue too.
    queue: SyncSender<(Instant, Record)>,
    /// Changes whenever recording starts failing or works again.
    pub health: watch::Receiver<Health>,
    pub progress: Arc<Progress>,
}

/// How far the writer thread trails: read by the engine task for the metrics, without a lock.
#[derive(Debug)]
pub struct Progress {
    epoch: Instant,
    /// When the oldest record the thread holds uncommitted was queued (nanoseconds since
    /// `epoch`), or `u64::MAX` when it holds none.
    oldest_pending_ns: AtomicU64,
    pending: AtomicUsize,
}

impl Progress {
    fn new() -> Self {
        Progress {
            epoch: Instant::now(),
            oldest_pending_ns: AtomicU64::new(u64::MAX),
            pending: AtomicUsize::new(0),
        }
    }

    /// How long the oldest uncommitted record has waited (zero when caught up), and how many
    /// records wait.
    pub fn lag(&self) -> (Duration, usize) {
        self.lag_at(Instant::now())
    }

    fn lag_at(&self, now: Instant) -> (Duration, usize) {
        let pending = self.pending.load(Ordering::Relaxed);
        let oldest = self.oldest_pending_ns.load(Ordering::Relaxed);
        if pending == 0 || oldest == u64::MAX {
            return (Duration::ZERO, pending);
        }
        let since = self.epoch + Duration::from_nanos(oldest);
        (now.saturating_duration_since(since), pending)
    }

    fn set(&self, pending: usize, oldest: Option<Instant>) {
        let oldest = oldest.map_or(u64::MAX, |at| {
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
        });
        self.oldest_pending_ns.store(oldest, Ordering::Relaxed);
        self.pending.store(pending, Ordering::Relaxed);
    }
}

impl RecorderSink {
    /// Queues a record without waiting. The record comes back if the queue is full or the
    /// thread is gone: the caller must treat recording as failing.
    pub fn send(&self, record: Record) -> Result<(), Record> {
        self.queue
            .try_send((Instant::now(), record))
            .map_err(|error| match error {
                TrySendError::Full((_, record)) | TrySendError::Disconnected((_, record)) => record,
            })
    }
}

/// Starts the writer thread on `store`.
pub fn start(store: Store) -> std::io::Result<(RecorderSink, JoinHandle<()>)> {
    let (queue, records) = sync_channel(QUEUE);
    let (health_tx, health) = watch::channel(Health::Recording);
    let progress = Arc::new(Progress::new());
    let writer = Writer::new(store, records, health_tx, progress.clone());
    let thread = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || writer.run())?;
    Ok((
        RecorderSink {
            queue,
            health,
            progress,
        },
        thread,
    ))
}

/// Records that could not be kept: their session and time span, to be written as a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct LostRecords {
    session: SessionId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    count: usize,
}

impl LostRecords {
    /// Adds `record` to the span in `lost` (starting one if there is none).
    pub fn note(lost: &mut Option<LostRecords>, record: &Record) {
        let at = record.time();
        match lost {
            Some(lost) => {
                lost.from = lost.from.min(at);
                lost.to = lost.to.max(at);
                lost.count += 1;
            }
            None => {
                *lost = Some(LostRecords {
                    session: record.session().clone(),
                    from: at,
                    to: at,
                    count: 1,
                })
            }
        }
    }

    /// The gap record for the span; `why` is told how many records were lost.
    pub fn gap(&self, why: impl FnOnce(usize) -> String) -> Record {
        Record::Gap {
            session: self.session.clone(),
            from: self.from,
            to: self.to,
            why: why(self.count),
        }
    }
}

struct Writer {
    store: Store,
    records: Receiver<(Instant, Record)>,
    health: watch::Sender<Health>,
    /// Records not committed yet, each with when it was queued.
    pending: VecDeque<(Instant, Record)>,
    lost: Option<LostRecords>,
    failing: bool,
    progress: Arc<Progress>,
}

impl Writer {
    fn new(
        store: Store,
        records: Receiver<(Instant, Record)>,
        health: watch::Sender<Health>,
        progress: Arc<Progress>,
    ) -> Self {
        Writer {
            store,
            records,
            health,
            pending: VecDeque::new(),
            lost: None,
            failing: false,
            progress,
        }
    }

    fn run(mut self) {
        loop {
            // Wait for the first record of a batch (or, while failing, for the retry time).
            let wait = if self.failing {
                RETRY
            } else {
                Duration::from_secs(3600)
            };
            match self.records.recv_timeout(wait) {
                Ok(queued) => self.keep(queued),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
            let batch_start = Instant::now();
            while self.pending.len() < BATCH_MAX {
                let left = BATCH_WINDOW.saturating_sub(batch_start.elapsed());
                match self.records.recv_timeout(left) {
                    Ok(queued) => self.keep(queued),
                    Err(_) => break,
                }
            }
            self.flush();
        }
    }

    fn keep(&mut self, queued: (Instant, Record)) {
        self.pending.push_back(queued);
        while self.pending.len() > MAX_PENDING {
            if let Some((_, dropped)) = self.pending.pop_front() {
                LostRecords::note(&mut self.lost, &dropped);
            }
        }
        // Said at once, not after the commit: while a batch is collected or a slow disk
        // commits it, the lag already counts its oldest record.
        self.report_progress();
    }

    fn report_progress(&self) {
        self.progress
            .set(self.pending.len(), self.pending.front().map(|(at, _)| *at));
    }

    /// Writes what is pending, a batch at a time, and says how far it got.
    fn flush(&mut self) {
        self.write_pending();
        self.report_progress();
    }

    fn write_pending(&mut self) {
        while !self.pending.is_empty() {
            if let Some(lost) = self.lost.take() {
                let oldest = self
                    .pending
                    .front()
                    .map_or_else(Instant::now, |(at, _)| *at);
                self.pending.push_front((
                    oldest,
                    lost.gap(|count| {
                        format!("recording failed: {count} record(s) could not be kept")
                    }),
                ));
            }
            let size = self.pending.len().min(BATCH_MAX);
            let batch: Vec<Record> = self
                .pending
                .range(..size)
                .map(|(_, record)| record.clone())
                .collect();
            match self.store.write(&batch) {
                Ok(()) => {
                    self.pending.drain(..size);
                    self.report_progress();
                    self.set_failing(None);
                }
                Err(StoreError::InvalidRecord { index, reason }) => {
                    // One record that can never be written must not block the others.
                    tracing::error!(index, %reason, "record refused by the store; dropped");
                    self.pending.remove(index);
                }
                Err(error) => {
                    self.set_failing(Some(error.to_string()));
                    return;
                }
            }
        }
    }

    fn set_failing(&mut self, failure: Option<String>) {
        match failure {
            Some(why) => {
                if !self.failing {
                    tracing::error!("recording failed: {why}");
                }
                self.failing = true;
                self.health.send_replace(Health::Failing(why));
            }
            None if self.failing => {
                tracing::info!("recording works again");
                self.failing = false;
                self.health.send_replace(Health::Recording);
            }
            None => {}
        }
    }
}

/// What `event` means for the record of `session`.
pub fn records_of(event: &Event, session: &SessionId) -> Vec<Record> {
    match event {
        Event::Reading(reading) => vec![Record::Reading(ReadingRecord {
            session: session.clone(),
            device: reading.device.clone(),
            vital: reading.vital,
            value: reading.value,
            quality: reading.quality,
            device_time: reading.device_time,
            received: reading.time,
        })],
        Event::Alarm(event) => {
            let alarm = &event.alarm.alarm;
            let by = match &event.change {
                Change::Acknowledged { by } | Change::AudioPaused { by } => Some(by.clone()),
                _ => None,
            };
            let source = alarm.source.name().to_string();
            let change = event.change.as_str().to_string();
            vec![Record::Alarm(Box::new(AlarmRecord {
                session: session.clone(),
                at: event.time,
                alarm: alarm.id.0,
                change,
                by,
                kind: alarm.kind,
                priority: alarm.priority,
                source,
                device: alarm.device.clone(),
                vital: alarm.vital,
                value: alarm.value,
                limit: alarm.limit,
                message: alarm.message.clone(),
                advice: alarm.advice.clone(),
                json: serde_json::to_string(event.as_ref()).unwrap_or_default(),
            }))]
        }
        Event::Session(change) => {
            let (at, by) = (change.time, change.by.clone());
            match (change.change, change.session.phase) {
                (SessionChange::Started, _) => vec![Record::SessionStarted {
                    session: session.clone(),
                    at,
                    by,
                }],
                (SessionChange::Phase, Phase::Ended) => vec![Record::SessionEnded {
                    session: session.clone(),
                    at,
                    by,
                }],
                (SessionChange::Phase, phase) => vec![Record::PhaseChanged {
                    session: session.clone(),
                    phase,
                    at,
                    by,
                }],
                (SessionChange::Note, _) => vec![Record::Note {
                    session: session.clone(),
                    text: change.note.clone().unwrap_or_default(),
                    by,
                    at,
                }],
            }
        }
        Event::Link(link) => vec![Record::Link {
            session: session.clone(),
            device: link.device.clone(),
            state: link.state,
            detail: link.detail.clone(),
            at: link.time,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vitals::LinkState;

    fn link_at(second: i64) -> Record {
        Record::Link {
            session: SessionId::parse("KAP-1").unwrap(),
            device: crate::vitals::DeviceId::new("ox1"),
            state: LinkState::Connected,
            detail: None,
            at: DateTime::<Utc>::from_timestamp(second, 0).unwrap(),
        }
    }

    /// Polls `done` until it holds: the writer is a thread on a real disk.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn the_lag_counts_records_from_their_queueing_until_their_commit_however_slow_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.sqlite");
        let (sink, writer) = start(Store::open(&path).unwrap()).unwrap();
        // Another connection holds the write lock: the writer's commit waits (below the
        // store's busy timeout), as on a disk that takes its time.
        let locker = rusqlite::Connection::open(&path).unwrap();
        locker.execute_batch("BEGIN EXCLUSIVE").unwrap();

        let before = Instant::now();
        let started = Record::SessionStarted {
            session: SessionId::parse("KAP-1").unwrap(),
            at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            by: "nurse-a".into(),
        };
        sink.send(started).unwrap();
        sink.send(link_at(1)).unwrap();
        let after = Instant::now();
        wait_until("the writer holds both records", || {
            sink.progress.lag().1 == 2
        });
        // Said while the commit still waits, not once the writer gave up on it.
        assert_eq!(*sink.health.borrow(), Health::Recording);
        // Before the commit is done, the lag already runs from the first record's queueing.
        let (lag, pending) = sink.progress.lag_at(after + Duration::from_secs(4));
        assert_eq!(pending, 2);
        assert!(
            lag >= Duration::from_secs(4) && lag <= Duration::from_secs(4) + (after - before),
            "{lag:?}"
        );

        drop(locker); // rolls back: the commit goes through
        wait_until("the records are committed", || {
            sink.progress.lag() == (Duration::ZERO, 0)
        });
        assert_eq!(
            *sink.health.borrow(),
            Health::Recording,
            "slow is not failed"
        );
        drop(sink);
        writer.join().unwrap();
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(
            store.sessions().unwrap().len(),
            1,
            "the session is recorded"
        );
    }

    #[test]
    fn a_reading_is_recorded_at_its_receive_time_with_the_devices_own_clock_only_beside_it() {
        // A monitor whose clock rolled over stamps its reading 1 January 2000.
        let received = DateTime::<Utc>::from_timestamp(1_795_000_000, 250_000_000).unwrap();
        let rolled_over = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap();
        let reading = crate::vitals::Reading {
            device: crate::vitals::DeviceId::new("ox1"),
            vital: crate::vitals::Vital::Spo2,
            value: Some(97.0),
            quality: crate::vitals::Quality::GOOD,
            device_time: Some(rolled_over),
            received: crate::vitals::Mono::ZERO,
            received_utc: received,
        };
        let session = SessionId::parse("KAP-1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("sessions.sqlite")).unwrap();
        let mut records = vec![Record::SessionStarted {
            session: session.clone(),
            at: received - chrono::TimeDelta::seconds(1),
            by: "nurse-a".into(),
        }];
        records.extend(records_of(
            &Event::Reading(crate::events::ReadingView::of(&reading, None)),
            &session,
        ));
        store.write(&records).unwrap();

        let key = store.sessions().unwrap()[0].key;
        let mut stored = Vec::new();
        store
            .readings::<StoreError>(key, |r| {
                stored.push(r);
                Ok(())
            })
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].received, received, "the record's time");
        assert_eq!(stored[0].device_time, Some(rolled_over), "kept beside it");
    }

    #[test]
    fn lost_records_become_one_gap_over_their_whole_span() {
        let mut lost = None;
        for second in [20, 10, 30] {
            LostRecords::note(&mut lost, &link_at(second));
        }
        let gap = lost.unwrap().gap(|count| format!("{count} lost"));
        assert_eq!(
            gap,
            Record::Gap {
                session: SessionId::parse("KAP-1").unwrap(),
                from: DateTime::<Utc>::from_timestamp(10, 0).unwrap(),
                to: DateTime::<Utc>::from_timestamp(30, 0).unwrap(),
                why: "3 lost".to_string(),
            }
        );
    }
}
