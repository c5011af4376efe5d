//! The engine task: the thin async shell around the pure core.
//!
//! It sleeps until a driver pushes into a ring (one shared `Notify`), a command arrives from the
//! API, or the tick is due; it drains every ring, feeds the core with the daemon clock's `now`,
//! updates the metrics and publishes events. Sinks read a broadcast channel and may lag without
//! ever slowing it. Session control and status snapshots are commands, so the task alone owns
//! the state and every answer is consistent.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use super::core::{
    ActionError, AlarmId, AlarmTransition, Change, DaemonCondition, DeviceSpec, Engine,
};
use super::rules::RuleSet;
use super::trends::Trends;
use crate::acquire::ring::RingConsumer;
use crate::clock::Clock;
use crate::events::{
    AlarmEvent, AlarmView, DeviceView, Event, Heartbeat, LinkEvent, Published, ReadingView,
    SessionChange, SessionEvent, SessionView, StatusView, TrendsView,
};
use crate::metrics::Metrics;
use crate::recorder::sink::{Health, LostRecords, RecorderSink, records_of};
use crate::recorder::{OpenSession, Record};
use crate::vitals::{DeviceId, DeviceMessage, Mono, Phase, Session, SessionId, Vital};

/// At most this many messages are taken from one ring before the next ring gets its turn.
const DRAIN_BATCH: usize = 256;
/// How often (in daemon time) the engine ticks to raise delayed and silence alarms.
const TICK: Duration = Duration::from_secs(1);
/// The tick's real period never goes below this, whatever the clock speed.
const MIN_REAL_TICK: Duration = Duration::from_millis(5);
/// The engine counts as stalled when it has not ticked for this long in real time: the
/// event stream's heartbeat then stops, and panels show MONITOR OFFLINE.
const STALLED_AFTER: Duration = Duration::from_secs(3);
/// Longest note accepted, in characters.
pub const NOTE_MAX_CHARS: usize = 500;

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The request itself is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the session's state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// What the request names does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The engine task is gone (HTTP 503).
    #[error("the alarm engine is not running")]
    Unavailable,
}

enum Command {
    StartSession {
        id: String,
        by: String,
        reply: oneshot::Sender<Result<SessionView, CommandError>>,
    },
    SetPhase {
        phase: Phase,
        by: String,
        reply: oneshot::Sender<Result<SessionView, CommandError>>,
    },
    Acknowledge {
        alarm: AlarmId,
        by: String,
        reply: oneshot::Sender<Result<Vec<AlarmView>, CommandError>>,
    },
    AudioPause {
        /// `None`: every active alarm.
        alarm: Option<AlarmId>,
        by: String,
        reply: oneshot::Sender<Result<Vec<AlarmView>, CommandError>>,
    },
    Note {
        text: String,
        by: String,
        reply: oneshot::Sender<Result<SessionEvent, CommandError>>,
    },
    Status {
        reply: oneshot::Sender<StatusView>,
    },
    Trends {
        reply: oneshot::Sender<TrendsView>,
    },
    /// One of the daemon's own functions fails (`Some(why)`) or works again.
    DaemonFailure {
        condition: DaemonCondition,
        failure: Option<String>,
    },
}

/// The API's way to talk to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<Published>>,
    clock: Clock,
    /// The daemon-clock time (ms) of the engine task's latest tick.
    last_tick_ms: Arc<AtomicU64>,
}

impl EngineHandle {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| CommandError::Unavailable)?;
        answer.await.map_err(|_| CommandError::Unavailable)
    }

    /// Starts a session; `by` is who asked (the nurse token's name), recorded with it.
    pub async fn start_session(&self, id: String, by: String) -> Result<SessionView, CommandError> {
        self.ask(|reply| Command::StartSession { id, by, reply })
            .await?
    }

    pub async fn set_phase(&self, phase: Phase, by: String) -> Result<SessionView, CommandError> {
        self.ask(|reply| Command::SetPhase { phase, by, reply })
            .await?
    }

    /// Acknowledges an alarm; answers the alarm as it now is (none if that ended it).
    pub async fn acknowledge(
        &self,
        alarm: AlarmId,
        by: String,
    ) -> Result<Vec<AlarmView>, CommandError> {
        self.ask(|reply| Command::Acknowledge { alarm, by, reply })
            .await?
    }

    /// Pauses the audio of one alarm or of all (`None`); answers the alarms paused.
    pub async fn audio_pause(
        &self,
        alarm: Option<AlarmId>,
        by: String,
    ) -> Result<Vec<AlarmView>, CommandError> {
        self.ask(|reply| Command::AudioPause { alarm, by, reply })
            .await?
    }

    /// Adds a note to the active session, published as a session event.
    pub async fn note(&self, text: String, by: String) -> Result<SessionEvent, CommandError> {
        self.ask(|reply| Command::Note { text, by, reply }).await?
    }

    pub async fn status(&self) -> Result<StatusView, CommandError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// The last half hour of every vital.
    pub async fn trends(&self) -> Result<TrendsView, CommandError> {
        self.ask(|reply| Command::Trends { reply }).await
    }

    /// Reports that one of the daemon's own functions (alarm forwarding) fails or works
    /// again: the engine raises or ends its technical alarm.
    pub async fn daemon_failure(
        &self,
        condition: DaemonCondition,
        failure: Option<String>,
    ) -> Result<(), CommandError> {
        self.commands
            .send(Command::DaemonFailure { condition, failure })
            .await
            .map_err(|_| CommandError::Unavailable)
    }

    /// What the event stream's heartbeat says now; `None` while the engine task is stalled
    /// or gone (it has not ticked for `STALLED_AFTER` of real time), so no heartbeat is sent.
    pub fn heartbeat(&self) -> Option<Heartbeat> {
        let now = self.clock.now();
        let last = Mono::from_millis(self.last_tick_ms.load(Ordering::Relaxed));
        let stalled = self.clock.real(now.saturating_since(last)) > STALLED_AFTER;
        (!stalled && !self.commands.is_closed()).then(|| Heartbeat {
            time: self.clock.utc_at(now),
            clock_speed: self.clock.speed(),
        })
    }

    /// A new subscription to everything the engine publishes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.events.subscribe()
    }
}

pub struct EngineTask {
    engine: Engine,
    session: Option<Session>,
    rings: Vec<RingConsumer>,
    wake: Arc<Notify>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Arc<Published>>,
    metrics: Metrics,
    clock: Clock,
    devices: HashMap<DeviceId, DeviceInfo>,
    trends: Trends,
    last_tick_ms: Arc<AtomicU64>,
    recording: Recording,
    watchdog: Option<Watchdog>,
}

/// The service manager's watchdog (systemd's `WatchdogSec=`), fed from the engine loop's tick
/// and from nothing else: an engine that stops ticking stops the pings, and systemd restarts
/// the daemon.
pub struct Watchdog {
    /// At least this long (real time) between two pings: half the watchdog's timeout.
    every: Duration,
    last: Option<tokio::time::Instant>,
    ping: Box<dyn FnMut() + Send>,
}

impl Watchdog {
    /// Pings through `ping` for a watchdog that fires after `timeout` without one; `None` for a
    /// zero timeout (no watchdog).
    pub fn new(timeout: Duration, ping: impl FnMut() + Send + 'static) -> Option<Self> {
        (!timeout.is_zero()).then(|| Watchdog {
            every: timeout / 2,
            last: None,
            ping: Box::new(ping),
        })
    }

    /// The engine ticked at `at` (the tick's scheduled instant, so that ticks one period
    /// apart are exactly that): pings when `every` has passed since the last ping.
    fn ticked(&mut self, at: tokio::time::Instant) {
        if self
            .last
            .is_none_or(|last| at.saturating_duration_since(last) >= self.every)
        {
            (self.ping)();
            self.last = Some(at);
        }
    }
}

/// The engine task's side of the session recorder.
#[derive(Default)]
struct Recording {
    sink: Option<RecorderSink>,
    /// Why writing fails, as the writer thread last said (or the store could not be opened).
    writer_failure: Option<String>,
    /// Records the queue refused (it was full): their span, written as a gap once it drains.
    refused: Option<LostRecords>,
    /// Whether the recorder trails by more than [`RECORDING_LAG_LIMIT`].
    lagging: bool,
    /// What the engine was last told.
    reported_failure: Option<String>,
}

/// Records that wait this long for their commit are at risk in a crash, and the record's
/// promise (nothing older than 1 s lost) no longer holds: a recording failure. Real time, as
/// the disk's is; below the store's 5 s busy timeout, so a database held by another process
/// shows before the writer gives up on it.
pub const RECORDING_LAG_LIMIT: Duration = Duration::from_secs(3);

/// A device as the engine task is told of it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub spec: DeviceSpec,
    pub profile: String,
    /// The vitals it reports.
    pub vitals: Vec<Vital>,
    /// How often it reports (a cuff: how often it measures).
    pub interval: Duration,
}

impl DeviceInfo {
    /// How old its readings may be and still count as current: the interval and a grace of
    /// a tenth of it, at least 2 s.
    pub fn stale_after(&self) -> Duration {
        self.interval + (self.interval / 10).max(Duration::from_secs(2))
    }
}

/// A change a nurse must hear of: an alarm raised, escalated or back.
fn is_signal(change: &Change) -> bool {
    matches!(
        change,
        Change::Raised | Change::Escalated { .. } | Change::ConditionReturned
    )
}

/// Capacity of the event broadcast: a subscriber this far behind loses the oldest events (and
/// is told so). The backlog stays allocated, each event with its JSON (about 0.4 KB), so it
/// is memory for good: 2048 events are 7 s of the 16-device soak's stream, 8 minutes of a
/// chair's oximeter and cuff.
const EVENT_BACKLOG: usize = 2048;

impl EngineTask {
    pub fn new(
        rules: RuleSet,
        devices: Vec<DeviceInfo>,
        rings: Vec<RingConsumer>,
        wake: Arc<Notify>,
        metrics: Metrics,
        clock: Clock,
    ) -> (Self, EngineHandle) {
        let specs: Vec<DeviceSpec> = devices.iter().map(|d| d.spec.clone()).collect();
        for device in &devices {
            metrics.add_device(&device.spec.id, &device.vitals, device.stale_after());
        }
        metrics.set_phase(None);
        let (command_tx, commands) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let last_tick_ms = Arc::new(AtomicU64::new(mono_ms(clock.now())));
        let task = EngineTask {
            engine: Engine::new(rules, &specs, clock.now()),
            session: None,
            rings,
            wake,
            commands,
            events: events.clone(),
            metrics,
            devices: devices
                .into_iter()
                .map(|d| (d.spec.id.clone(), d))
                .collect(),
            trends: Trends::default(),
            last_tick_ms: last_tick_ms.clone(),
            clock: clock.clone(),
            recording: Recording::default(),
            watchdog: None,
        };
        (
            task,
            EngineHandle {
                commands: command_tx,
                events,
                clock,
                last_tick_ms,
            },
        )
    }

    /// Records sessions through `sink`, numbering alarms after `highest_alarm_id` (the highest
    /// the store has recorded). `open` is a session the store found unended (the daemon
    /// stopped during it): the session goes on, with a gap for the time it was down.
    pub fn attach_recorder(
        &mut self,
        sink: RecorderSink,
        highest_alarm_id: u64,
        open: Option<OpenSession>,
    ) {
        self.engine.continue_alarm_ids_after(highest_alarm_id);
        self.metrics.watch_recorder(sink.progress.clone());
        self.recording.sink = Some(sink);
        let Some(open) = open else { return };
        let now = self.clock.now();
        let utc = self.clock.utc_at(now);
        // No session id in the log (here or below): it stays in the clinical record, the
        // recording and the API's session view; one session at a time per daemon, so the
        // log's times say which.
        tracing::warn!(phase = %open.phase, "resuming the session the daemon was recording when it stopped");
        let (infusion_started_utc, infusion_stopped_utc) = open.infusion();
        self.session = Some(Session {
            id: open.id.clone(),
            phase: open.phase,
            started: now,
            started_utc: open.started,
            phase_since: now,
            phase_since_utc: open.phase_since,
            infusion_started_utc,
            infusion_stopped_utc,
        });
        let why = match self.clock.behind_record() {
            // The system clock read earlier than the last record (stepped back while the
            // daemon was down, or the last run was at --speed): the daemon clock starts just
            // after the record instead (`Clock::resuming`), so the record stays in time order,
            // and the record says why this run's times are ahead of the system clock.
            Some(behind) => {
                tracing::warn!(
                    last_record = %open.last_record,
                    now = %utc,
                    behind_s = behind.as_seconds_f64(),
                    "the system clock is behind the session's last record: this run's times continue from that record, ahead of the system clock"
                );
                format!(
                    "daemon restarted; the system clock read {:.3} s behind the session's last record, so this run's times continue from that record (ahead of the system clock; the real downtime is unknown)",
                    behind.as_seconds_f64()
                )
            }
            None => "daemon restarted".to_string(),
        };
        if open.last_record > utc {
            // Not a clock started by `Clock::resuming` with this record: the record may go
            // out of order.
            tracing::warn!(last_record = %open.last_record, now = %utc, "the clock is behind the session's last record");
        }
        self.record(Record::Gap {
            session: open.id,
            from: open.last_record.min(utc),
            to: utc,
            why,
        });
        let transitions = self.engine.resume_session(open.phase, open.baseline, now);
        self.metrics.set_phase(Some(open.phase));
        self.publish_transitions(transitions);
    }

    /// Feeds `watchdog` from the loop's tick (see `Watchdog`).
    pub fn set_watchdog(&mut self, watchdog: Watchdog) {
        self.watchdog = Some(watchdog);
    }

    /// The store could not be opened: nothing will be recorded, which is a technical alarm.
    pub fn recorder_unavailable(&mut self, why: String) {
        self.recording.writer_failure = Some(why);
        self.report_recording();
    }

    /// Runs until every `EngineHandle` is dropped.
    pub async fn run(mut self) {
        let mut period = self.clock.real(TICK).max(MIN_REAL_TICK);
        if let Some(watchdog) = &self.watchdog {
            // At least one tick per ping interval, or the watchdog would fire between pings.
            period = period.min(watchdog.every.max(MIN_REAL_TICK));
        }
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut recorder_health = self.recording.sink.as_ref().map(|sink| sink.health.clone());
        loop {
            // Unbiased: under a flood of readings, commands and ticks still get their turn.
            tokio::select! {
                () = self.wake.notified() => self.drain(),
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                                at = tick.tick() => {
                    let now = self.clock.now();
                    self.last_tick_ms.store(mono_ms(now), Ordering::Relaxed);
                    let transitions = self.engine.tick(now);
                    self.publish_transitions(transitions);
                    self.metrics.set_reading_ages(now);
                    self.metrics.set_session_elapsed(self.session_elapsed(now));
                    let (lag, _) = self
                        .recording
                        .sink
                        .as_ref()
                        .map_or((Duration::ZERO, 0), |sink| sink.progress.lag());
                    self.recording.lagging = lag > RECORDING_LAG_LIMIT;
                    self.metrics
                        .set_recording_failing(self.recording.reported_failure.is_some());
                    if let Some(watchdog) = self.watchdog.as_mut() {
                        watchdog.ticked(at);
                    }
                }
                changed = async {
                    match recorder_health.as_mut() {
                        Some(health) => health.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let health = match (changed, recorder_health.as_mut()) {
                        (Ok(()), Some(health)) => health.borrow_and_update().clone(),
                        _ => {
                            recorder_health = None;
                            Health::Failing("the recorder thread stopped".to_string())
                        }
                    };
                    self.recording.writer_failure = match health {
                        Health::Recording => None,
                        Health::Failing(why) => Some(why),
                    };
                }
            }
            self.report_recording();
        }
    }

    /// Queues a record for the store; a full queue is a recording failure, its records a gap.
    fn record(&mut self, record: Record) {
        let Some(sink) = &self.recording.sink else {
            return;
        };
        if let Some(lost) = &self.recording.refused {
            let gap = lost.gap(|count| format!("recorder queue full: {count} record(s) lost"));
            if sink.send(gap).is_ok() {
                self.recording.refused = None;
            }
        }
        // While refused records are owed their gap, later ones join the span rather than
        // overtake it, so the record stays in time order.
        let refused = match self.recording.refused {
            Some(_) => Some(record),
            None => sink.send(record).err(),
        };
        if let Some(record) = refused {
            LostRecords::note(&mut self.recording.refused, &record);
        }
    }

    /// Tells the engine whether recording fails, when that changed.
    fn report_recording(&mut self) {
        let failure = match (&self.recording.writer_failure, &self.recording.refused) {
            (Some(why), _) => Some(why.clone()),
            (None, Some(_)) => Some("the recorder cannot keep up: its queue is full".to_string()),
            (None, None) if self.recording.lagging => Some(format!(
                "records wait more than {} s for the disk (slow, or the database locked)",
                RECORDING_LAG_LIMIT.as_secs()
            )),
            (None, None) => None,
        };
        if failure == self.recording.reported_failure {
            return;
        }
        self.recording.reported_failure = failure.clone();
        let now = self.clock.now();
        let transitions =
            self.engine
                .daemon_failure(DaemonCondition::Recording, failure.as_deref(), now);
        self.publish_transitions(transitions);
    }

    fn drain(&mut self) {
        loop {
            let mut any = false;
            for index in 0..self.rings.len() {
                for _ in 0..DRAIN_BATCH {
                    let Some(message) = self.rings[index].pop() else {
                        break;
                    };
                    any = true;
                    self.accept(message);
                }
            }
            if !any {
                break;
            }
        }
        let now = self.clock.now();
        for index in 0..self.rings.len() {
            let ring = &self.rings[index];
            let (device, dropped, fill) = (ring.device.clone(), ring.dropped(), ring.fill_ratio());
            self.metrics.set_ring(&device, dropped, fill);
            let transitions = self.engine.ring_dropped(&device, dropped, now);
            self.publish_transitions(transitions);
        }
    }

    fn accept(&mut self, message: DeviceMessage) {
        let now = self.clock.now();
        let transitions = self.engine.accept(&message, now);
        // The reading's arrival → its alarm events on the stream: timed around the publish.
        let caused_alarm = match &message {
            DeviceMessage::Readings(readings) => readings
                .first()
                .map(|r| r.received)
                .filter(|_| transitions.iter().any(|t| is_signal(&t.change))),
            _ => None,
        };
        // The sinks' side of each message: metrics, the log and the event stream.
        match message {
            DeviceMessage::Readings(readings) => {
                for reading in &readings {
                    self.metrics.observe_reading(reading);
                    self.trends.record(reading);
                    self.publish(Event::Reading(ReadingView::of(reading, None)));
                }
            }
            DeviceMessage::DecodeError {
                device,
                kind,
                skipped,
                detail,
                ..
            } => {
                tracing::debug!(device = %device, kind, skipped, detail = %detail, "decode error");
                self.metrics.decode_error(&device, kind);
            }
            DeviceMessage::Link {
                device,
                state,
                detail,
                at_utc,
                ..
            } => {
                tracing::info!(device = %device, state = %state.as_str(), detail = %detail.as_deref().unwrap_or(""), "link");
                self.metrics.set_link(&device, state);
                self.publish(Event::Link(LinkEvent {
                    device,
                    state,
                    detail,
                    time: at_utc,
                }));
            }
        }
        self.publish_transitions(transitions);
        if let Some(received) = caused_alarm {
            let latency = self.clock.now().saturating_since(received);
            self.metrics.alarm_signal_latency(self.clock.real(latency));
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::StartSession { id, by, reply } => {
                let result = self.start_session(&id, by);
                let _ = reply.send(result);
            }
            Command::SetPhase { phase, by, reply } => {
                let result = self.set_phase(phase, by);
                let _ = reply.send(result);
            }
            Command::Acknowledge { alarm, by, reply } => {
                let now = self.clock.now();
                tracing::info!(alarm = alarm.0, by = %by, "acknowledge");
                let result = self.engine.acknowledge(alarm, &by, now);
                let _ = reply.send(self.publish_action(result, now));
            }
            Command::AudioPause { alarm, by, reply } => {
                let now = self.clock.now();
                tracing::info!(alarm = ?alarm.map(|a| a.0), by = %by, "audio pause");
                let result = self.engine.audio_pause(alarm, &by, now);
                let _ = reply.send(self.publish_action(result, now));
            }
            Command::Note { text, by, reply } => {
                let _ = reply.send(self.note(&text, by));
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Trends { reply } => {
                let now = self.clock.now();
                let _ = reply.send(self.trends.view(now, self.clock.utc_at(now)));
            }
            Command::DaemonFailure { condition, failure } => {
                let now = self.clock.now();
                let transitions = self
                    .engine
                    .daemon_failure(condition, failure.as_deref(), now);
                self.publish_transitions(transitions);
            }
        }
    }

    /// Publishes a nurse action's transitions; answers the alarms it touched that are still
    /// active.
    fn publish_action(
        &mut self,
        result: Result<Vec<AlarmTransition>, ActionError>,
        now: Mono,
    ) -> Result<Vec<AlarmView>, CommandError> {
        let transitions = result.map_err(|e| CommandError::NotFound(e.to_string()))?;
        let mut ids: Vec<AlarmId> = transitions.iter().map(|t| t.alarm.id).collect();
        ids.dedup();
        self.publish_transitions(transitions);
        Ok(ids
            .into_iter()
            .filter_map(|id| self.engine.alarm(id))
            .map(|alarm| AlarmView::of(alarm, &self.clock, now))
            .collect())
    }

    fn start_session(&mut self, id: &str, by: String) -> Result<SessionView, CommandError> {
        let id = SessionId::parse(id).map_err(CommandError::Invalid)?;
        if let Some(active) = self.session.as_ref().filter(|s| s.is_active()) {
            return Err(CommandError::Conflict(format!(
                "session {} is active (phase {}); end it before starting another",
                active.id, active.phase
            )));
        }
        let now = self.clock.now();
        let session = Session::start(id, now, self.clock.utc_at(now));
        tracing::info!(by = %by, "session started");
        self.session = Some(session);
        self.enter_phase(Phase::Baseline, now, by, SessionChange::Started)
    }

    /// A note on the active session: trimmed, 1 to `NOTE_MAX_CHARS` characters, no control
    /// characters but line breaks and tabs.
    fn note(&mut self, text: &str, by: String) -> Result<SessionEvent, CommandError> {
        let text = text.trim();
        let length = text.chars().count();
        if length == 0 || length > NOTE_MAX_CHARS {
            return Err(CommandError::Invalid(format!(
                "a note must be 1 to {NOTE_MAX_CHARS} characters, got {length}"
            )));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(CommandError::Invalid(format!(
                "a note may not hold the control character {bad:?}"
            )));
        }
        let now = self.clock.now();
        let session = self
            .session_view(now)
            .filter(|s| s.phase != Phase::Ended)
            .ok_or_else(|| {
                CommandError::Conflict("no session is active; start one first".into())
            })?;
        // The text stays out of the log: it is clinical content; the event stream carries it.
        tracing::info!(by = %by, chars = length, "note");
        let event = SessionEvent {
            session,
            change: SessionChange::Note,
            note: Some(text.to_string()),
            by,
            time: self.clock.utc_at(now),
        };
        self.publish(Event::Session(event.clone()));
        Ok(event)
    }

    fn set_phase(&mut self, phase: Phase, by: String) -> Result<SessionView, CommandError> {
        let now = self.clock.now();
        let utc = self.clock.utc_at(now);
        let session = self
            .session
            .as_mut()
            .filter(|s| s.is_active())
            .ok_or_else(|| {
                CommandError::Conflict("no session is active; start one first".into())
            })?;
        session
            .move_to(phase, now, utc)
            .map_err(CommandError::Conflict)?;
        tracing::info!(phase = %phase, by = %by, "phase");
        self.enter_phase(phase, now, by, SessionChange::Phase)
    }

    /// Tells the core, the metrics and the sinks that the session is now in `phase`.
    fn enter_phase(
        &mut self,
        phase: Phase,
        now: Mono,
        by: String,
        change: SessionChange,
    ) -> Result<SessionView, CommandError> {
        let active = (phase != Phase::Ended).then_some(phase);
        let transitions = self.engine.set_phase(active, now);
        self.metrics.set_phase(active);
        let view = self
            .session_view(now)
            .ok_or(CommandError::Conflict("no session".into()))?;
        self.publish(Event::Session(SessionEvent {
            session: view.clone(),
            change,
            note: None,
            by,
            time: self.clock.utc_at(now),
        }));
        self.publish_transitions(transitions);
        Ok(view)
    }

    /// How long the active session has run, by the daemon's clock (from its recorded start,
    /// so a resumed session counts from when it began, not from the restart).
    fn session_elapsed(&self, now: Mono) -> Option<Duration> {
        let session = self.session.as_ref().filter(|s| s.is_active())?;
        (self.clock.utc_at(now) - session.started_utc).to_std().ok()
    }

    fn session_view(&self, now: Mono) -> Option<SessionView> {
        let baseline = Vital::ALL
            .into_iter()
            .filter_map(|vital| self.engine.baseline(vital).map(|value| (vital, value)))
            .collect();
        self.session.as_ref().map(|s| {
            SessionView::of(
                s,
                now.saturating_since(s.phase_since).as_secs_f64(),
                baseline,
            )
        })
    }

    fn status(&self) -> StatusView {
        let now = self.clock.now();
        let age = |at: Mono| now.saturating_since(at).as_secs_f64();
        let devices = self
            .engine
            .devices()
            .iter()
            .map(|device| {
                let info = self.devices.get(&device.id);
                let interval = info.map_or(Duration::ZERO, |i| i.interval);
                DeviceView {
                    id: device.id.clone(),
                    profile: info.map(|i| i.profile.clone()).unwrap_or_default(),
                    vitals: info.map(|i| i.vitals.clone()).unwrap_or_default(),
                    interval_s: interval.as_secs_f64(),
                    silent_after_s: device.silent_after.map(|d| d.as_secs_f64()),
                    stale_after_s: info
                        .map_or(Duration::from_secs(2), DeviceInfo::stale_after)
                        .as_secs_f64(),
                    link: device.link,
                    link_detail: device.link_detail.clone(),
                    last_heard_age_s: device.last_heard.map(age),
                    ring_dropped: device.ring_dropped(),
                    decode_errors: device.decode_errors(),
                    readings: device
                        .latest_readings()
                        .map(|r| (r.vital, ReadingView::of(r, Some(age(r.received)))))
                        .collect::<BTreeMap<_, _>>(),
                }
            })
            .collect();
        let mut alarms: Vec<_> = self
            .engine
            .active_alarms()
            .map(|alarm| AlarmView::of(alarm, &self.clock, now))
            .collect();
        alarms.sort_by(|a, b| {
            b.alarm
                .priority
                .cmp(&a.alarm.priority)
                .then(a.alarm.raised_at.cmp(&b.alarm.raised_at))
        });
        StatusView {
            time: self.clock.utc_at(now),
            clock_speed: self.clock.speed(),
            session: self.session_view(now),
            devices,
            alarms,
        }
    }

    fn publish_transitions(&mut self, transitions: Vec<AlarmTransition>) {
        if transitions.is_empty() {
            return;
        }
        self.metrics.set_alarms(self.engine.active_alarms());
        for transition in transitions {
            self.metrics.alarm_transition(&transition);
            let alarm = &transition.alarm;
            tracing::warn!(
                alarm = alarm.id.0,
                change = ?transition.change,
                priority = alarm.priority.as_str(),
                device = %alarm.device,
                "{}",
                alarm.message
            );
            let event = AlarmEvent {
                alarm: AlarmView::of(&transition.alarm, &self.clock, transition.at),
                time: self.clock.utc_at(transition.at),
                change: transition.change,
            };
            self.publish(Event::Alarm(Box::new(event)));
        }
    }

    fn publish(&mut self, event: Event) {
        // The active session's record; a session's own ending is part of it.
        let session = self
            .session
            .as_ref()
            .filter(|s| s.is_active() || matches!(event, Event::Session(_)))
            .map(|s| s.id.clone());
        if let Some(session) = session {
            for record in records_of(&event, &session) {
                self.record(record);
            }
        }
        // No subscriber is fine: nobody is watching the stream right now.
        let _ = self.events.send(Arc::new(Published::new(event)));
    }
}

fn mono_ms(t: Mono) -> u64 {
    u64::try_from(t.since_start().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_RULES, Source, parse_rule_set};

    fn task(clock: &Clock) -> (EngineTask, EngineHandle) {
        let rules = parse_rule_set(&Source::built_in("default.toml", DEFAULT_RULES))
            .expect("the default rules parse");
        EngineTask::new(
            rules,
            Vec::new(),
            Vec::new(),
            Arc::new(Notify::new()),
            Metrics::new("chair-test").expect("metrics"),
            clock.clone(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_stops_while_the_engine_does_not_tick() {
        let clock = Clock::start(60.0);
        let (engine, handle) = task(&clock);
        let beat = handle.heartbeat().expect("a fresh engine is alive");
        assert_eq!(beat.clock_speed, 60.0);

        // Not running: after 3 s of real time (180 s of daemon time) it counts as stalled.
        tokio::time::sleep(Duration::from_millis(2900)).await;
        assert!(handle.heartbeat().is_some());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            handle.heartbeat().is_none(),
            "a stalled engine has no heartbeat"
        );

        // Running, it ticks and the heartbeat is back, its time the daemon clock's.
        let running = tokio::spawn(engine.run());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let beat = handle.heartbeat().expect("a running engine is alive");
        assert_eq!(beat.time, clock.utc_at(clock.now()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(handle.heartbeat().is_some(), "it stays alive while it runs");

        running.abort();
        let _ = running.await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            handle.heartbeat().is_none(),
            "a dead engine has no heartbeat"
        );
    }

    /// A watchdog that records the (virtual) instant of each ping.
    fn recording_watchdog(
        timeout: Duration,
    ) -> (Watchdog, Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>) {
        let pings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = pings.clone();
        let watchdog = Watchdog::new(timeout, move || {
            sink.lock()
                .expect("the ping log")
                .push(tokio::time::Instant::now());
        })
        .expect("a non-zero timeout");
        (watchdog, pings)
    }

    fn count(pings: &std::sync::Mutex<Vec<tokio::time::Instant>>) -> usize {
        pings.lock().expect("the ping log").len()
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_fed_by_the_engine_ticks_and_nothing_else() {
        let clock = Clock::start(1.0);
        let wake = Arc::new(Notify::new());
        let rules = parse_rule_set(&Source::built_in("default.toml", DEFAULT_RULES))
            .expect("the default rules parse");
        let (mut engine, handle) = EngineTask::new(
            rules,
            Vec::new(),
            Vec::new(),
            wake.clone(),
            Metrics::new("chair-test").expect("metrics"),
            clock.clone(),
        );
        let (watchdog, pings) = recording_watchdog(Duration::from_secs(2));
        engine.set_watchdog(watchdog);

        // Attached but the loop is not running: no timer of its own pings.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(count(&pings), 0, "pinged without an engine loop");

        // Running: the first tick pings at once, then every half timeout (1 s).
        let running = tokio::spawn(engine.run());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(count(&pings), 1, "the first tick pings");
        // Wakes and commands keep the loop busy: still one ping per half timeout, no more.
        let busy = {
            let (wake, handle) = (wake.clone(), handle.clone());
            tokio::spawn(async move {
                loop {
                    wake.notify_one();
                    let _ = handle.status().await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(9_500)).await;
        busy.abort();
        {
            let log = pings.lock().expect("the ping log");
            assert_eq!(log.len(), 10, "one ping per second of running: {log:?}");
            for pair in log.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::from_secs(1));
            }
        }

        // The loop gone (as if it stalled for good): the pings stop, so systemd would restart.
        running.abort();
        let _ = running.await;
        let before = count(&pings);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(count(&pings), before, "pinged without an engine loop");
        drop(handle);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_pings_in_real_time_whatever_the_clock_speed() {
        // At 60x the engine ticks every 16.7 ms of real time: still one ping per half timeout.
        let clock = Clock::start(60.0);
        let (mut engine, handle) = task(&clock);
        let (watchdog, pings) = recording_watchdog(Duration::from_secs(2));
        engine.set_watchdog(watchdog);
        let running = tokio::spawn(engine.run());
        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = pings.lock().expect("the ping log").clone();
        assert!((9..=11).contains(&log.len()), "{} pings", log.len());
        for pair in log.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_secs(1) && gap < Duration::from_millis(1050),
                "{gap:?}"
            );
        }

        // A watchdog shorter than the tick: the loop ticks at least once per ping interval.
        running.abort();
        let clock = Clock::start(1.0);
        let (mut engine, _handle) = task(&clock);
        let (watchdog, pings) = recording_watchdog(Duration::from_millis(600));
        engine.set_watchdog(watchdog);
        let running = tokio::spawn(engine.run());
        tokio::time::sleep(Duration::from_millis(2_950)).await;
        let log = pings.lock().expect("the ping log").clone();
        assert_eq!(log.len(), 10, "every 300 ms: {log:?}");
        running.abort();
        drop(handle);
        assert!(Watchdog::new(Duration::ZERO, || {}).is_none());
    }

    /// Resumes the open session of a store whose last record is `last_record` with a clock
    /// started as the daemon starts it, the system clock reading `wall`; returns the store's
    /// events of the session once the engine task is gone and the writer has flushed.
    fn resume_with_wall_clock(
        last_record: chrono::DateTime<chrono::Utc>,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::recorder::StoredEvent> {
        use crate::recorder::Store;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sessions.sqlite");
        let id = SessionId::parse("KAP-RESUME-1").expect("id");
        let mut store = Store::open(&path).expect("store");
        store
            .write(&[
                Record::SessionStarted {
                    session: id.clone(),
                    at: last_record - chrono::TimeDelta::minutes(10),
                    by: "nurse-a".into(),
                },
                Record::PhaseChanged {
                    session: id.clone(),
                    phase: Phase::Infusion,
                    at: last_record,
                    by: "nurse-a".into(),
                },
            ])
            .expect("write");
        let open = store.open_session().expect("query").expect("open session");
        assert_eq!(open.last_record, last_record);
        let (sink, writer) = crate::recorder::sink::start(store).expect("recorder");
        let clock = Clock::starting_at(1.0, wall, Some(open.last_record));
        let (mut engine, handle) = task(&clock);
        engine.attach_recorder(sink, 0, Some(open));
        drop(engine);
        drop(handle);
        writer.join().expect("the writer flushes and stops");
        let store = Store::open_read_only(&path).expect("read back");
        let key = store.sessions().expect("sessions")[0].key;
        store.events(key).expect("events")
    }

    #[test]
    fn resuming_with_the_system_clock_behind_the_last_record_keeps_the_record_in_order() {
        use crate::recorder::EventDetail;
        let last = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .expect("a time")
            .with_timezone(&chrono::Utc);
        let step = chrono::TimeDelta::from_std(crate::clock::RESUME_STEP).expect("step");

        // An hour behind: the gap starts at the last record and ends one step after it,
        // never before, and says the clock was behind.
        let events = resume_with_wall_clock(last, last - chrono::TimeDelta::hours(1));
        let Some(gap) = events.last() else {
            panic!("no events")
        };
        let EventDetail::Gap { to, why } = &gap.what else {
            panic!("the last event is not the gap: {gap:?}")
        };
        assert_eq!(gap.at, last);
        assert!(*to >= last + step && *to < last + step * 2, "{to}");
        assert!(why.starts_with("daemon restarted"), "{why}");
        assert!(why.contains("3600.000 s behind"), "{why}");
        for pair in events.windows(2) {
            assert!(pair[0].at <= pair[1].at, "out of order: {events:?}");
        }

        // The usual restart: the gap runs from the last record to the system clock's now.
        let wall = last + chrono::TimeDelta::minutes(3);
        let events = resume_with_wall_clock(last, wall);
        let gap = events.last().expect("the gap");
        let EventDetail::Gap { to, why } = &gap.what else {
            panic!("the last event is not the gap: {gap:?}")
        };
        assert_eq!((gap.at, why.as_str()), (last, "daemon restarted"));
        assert!(*to >= wall && *to < wall + step, "{to}");
    }

    #[tokio::test(start_paused = true)]
    async fn notes_need_an_active_session_and_a_bounded_text() {
        let clock = Clock::start(1.0);
        let (engine, handle) = task(&clock);
        let running = tokio::spawn(engine.run());
        let mut events = handle.subscribe();
        let by = || "nurse-a".to_string();

        assert!(matches!(
            handle.note("calm".into(), by()).await,
            Err(CommandError::Conflict(_))
        ));
        handle
            .start_session("KAP-N-1".into(), by())
            .await
            .expect("session");
        for bad in ["", "   ", &"x".repeat(NOTE_MAX_CHARS + 1), "bell\u{7}"] {
            assert!(
                matches!(
                    handle.note(bad.to_string(), by()).await,
                    Err(CommandError::Invalid(_))
                ),
                "{bad:?} accepted"
            );
        }
        // Multi-byte characters count as one each.
        let longest = "é".repeat(NOTE_MAX_CHARS);
        let note = handle
            .note(format!("  {longest}  "), by())
            .await
            .expect("500 characters are fine");
        assert_eq!(note.note.as_deref(), Some(longest.as_str()));
        let line_breaks = handle
            .note("eyes closed\n\tcalm".into(), by())
            .await
            .expect("line breaks and tabs are fine");
        assert_eq!(line_breaks.change, SessionChange::Note);
        assert_eq!(line_breaks.by, "nurse-a");
        assert_eq!(line_breaks.session.id, "KAP-N-1");

        let mut published = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Session(session) = &**event {
                published.push((session.change, session.note.clone()));
            }
        }
        assert_eq!(
            published,
            [
                (SessionChange::Started, None),
                (SessionChange::Note, Some(longest)),
                (SessionChange::Note, Some("eyes closed\n\tcalm".into())),
            ]
        );

        handle
            .set_phase(Phase::Ended, by())
            .await
            .expect("end the session");
        assert!(matches!(
            handle.note("too late".into(), by()).await,
            Err(CommandError::Conflict(_))
        ));
        running.abort();
    }
}
