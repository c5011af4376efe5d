//! The engine task: the thin async shell around the pure core.
//!
//! It sleeps until a driver pushes into a ring (one shared `Notify`), a command arrives from the
//! API, or the tick is due; it drains every ring, feeds the core with the daemon clock's `now`,
//! updates the metrics and publishes events. Sinks read a broadcast channel and may lag without
//! ever slowing it. Session control and status snapshots are commands, so the task alone owns
//! the state and every answer is consistent.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use super::core::{ActionError, AlarmId, AlarmTransition, DeviceSpec, Engine};
use super::rules::RuleSet;
use crate::acquire::ring::RingConsumer;
use crate::clock::Clock;
use crate::events::{
    AlarmEvent, AlarmView, DeviceView, Event, LinkEvent, ReadingView, SessionEvent, SessionView,
    StatusView,
};
use crate::metrics::Metrics;
use crate::vitals::{DeviceId, DeviceMessage, Mono, Phase, Session, SessionId, Vital};

/// At most this many messages are taken from one ring before the next ring gets its turn.
const DRAIN_BATCH: usize = 256;
/// How often (in daemon time) the engine ticks to raise delayed and silence alarms.
const TICK: Duration = Duration::from_secs(1);
/// The tick's real period never goes below this, whatever the clock speed.
const MIN_REAL_TICK: Duration = Duration::from_millis(5);

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
    Status {
        reply: oneshot::Sender<StatusView>,
    },
}

/// The API's way to talk to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<Event>>,
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

    pub async fn status(&self) -> Result<StatusView, CommandError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// A new subscription to everything the engine publishes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }
}

pub struct EngineTask {
    engine: Engine,
    session: Option<Session>,
    rings: Vec<RingConsumer>,
    wake: Arc<Notify>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Arc<Event>>,
    metrics: Metrics,
    clock: Clock,
    profiles: HashMap<DeviceId, String>,
}

/// A device as the engine task is told of it.
pub struct DeviceInfo {
    pub spec: DeviceSpec,
    pub profile: String,
}

/// Capacity of the event broadcast: a subscriber this far behind loses the oldest events.
const EVENT_BACKLOG: usize = 4096;

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
        for spec in &specs {
            metrics.add_device(&spec.id);
        }
        metrics.set_phase(None);
        let (command_tx, commands) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let task = EngineTask {
            engine: Engine::new(rules, &specs, clock.now()),
            session: None,
            rings,
            wake,
            commands,
            events: events.clone(),
            metrics,
            profiles: devices
                .into_iter()
                .map(|d| (d.spec.id, d.profile))
                .collect(),
            clock,
        };
        (
            task,
            EngineHandle {
                commands: command_tx,
                events,
            },
        )
    }

    /// Runs until every `EngineHandle` is dropped.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.clock.real(TICK).max(MIN_REAL_TICK));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // Unbiased: under a flood of readings, commands and ticks still get their turn.
            tokio::select! {
                () = self.wake.notified() => self.drain(),
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                _ = tick.tick() => {
                    let now = self.clock.now();
                    let transitions = self.engine.tick(now);
                    self.publish_transitions(transitions);
                }
            }
        }
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
        // The sinks' side of each message: metrics, the log and the event stream.
        match message {
            DeviceMessage::Readings(readings) => {
                for reading in &readings {
                    self.metrics.observe_reading(reading);
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
            Command::Status { reply } => {
                let _ = reply.send(self.status());
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
        tracing::info!(session = %session.id, by = %by, "session started");
        self.session = Some(session);
        self.enter_phase(Phase::Baseline, now, by)
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
        tracing::info!(session = %session.id, phase = %phase, by = %by, "phase");
        self.enter_phase(phase, now, by)
    }

    /// Tells the core, the metrics and the sinks that the session is now in `phase`.
    fn enter_phase(
        &mut self,
        phase: Phase,
        now: Mono,
        by: String,
    ) -> Result<SessionView, CommandError> {
        let active = (phase != Phase::Ended).then_some(phase);
        let transitions = self.engine.set_phase(active, now);
        self.metrics.set_phase(active);
        let view = self
            .session_view(now)
            .ok_or(CommandError::Conflict("no session".into()))?;
        self.publish(Event::Session(SessionEvent {
            session: view.clone(),
            by,
        }));
        self.publish_transitions(transitions);
        Ok(view)
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
            .map(|device| DeviceView {
                id: device.id.clone(),
                profile: self.profiles.get(&device.id).cloned().unwrap_or_default(),
                link: device.link,
                link_detail: device.link_detail.clone(),
                last_heard_age_s: device.last_heard.map(age),
                ring_dropped: device.ring_dropped(),
                decode_errors: device.decode_errors(),
                readings: device
                    .latest_readings()
                    .map(|r| (r.vital, ReadingView::of(r, Some(age(r.received)))))
                    .collect::<BTreeMap<_, _>>(),
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

    fn publish(&self, event: Event) {
        // No subscriber is fine: nobody is watching the stream right now.
        let _ = self.events.send(Arc::new(event));
    }
}
