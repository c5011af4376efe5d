//! Wires the daemon together: clock, drivers and their rings, the engine task, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::sync::Notify;

use crate::acquire::start_drivers;
use crate::clock::Clock;
use crate::config::{Config, RecordingConfig};
use crate::engine::{DaemonCondition, DeviceInfo, DeviceSpec, EngineHandle, EngineTask, Watchdog};
use crate::events::RulesView;
use crate::forward::{self, ForwardConfig, Forwarder, HttpSink};
use crate::metrics::Metrics;
use crate::recorder::sink::RecorderSink;
use crate::recorder::{OpenSession, PruneScope, Store, StoreError};
use crate::server::{AppState, router};

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config, listen: SocketAddr, speed: f64) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && config.tokens.is_empty() {
        anyhow::bail!(
            "refusing to listen on {listen} without nurse tokens: anyone on that network could \
             silence alarms or end a session. Configure [[api.token]] entries, or listen on 127.0.0.1"
        );
    }
    if config.tokens.is_empty() {
        tracing::warn!(
            "no nurse tokens configured: session control and alarm actions are open to anyone on this machine"
        );
    }
    // The store before the clock: a session left open by a crash goes on, and its last record
    // decides where the clock's UTC starts (never before it), so that nothing this run records
    // is earlier than what is already recorded.
    let recorder = open_recorder(&config.recording)?;
    let last_record = match &recorder {
        Ok(OpenedRecorder {
            open: Some(open), ..
        }) => Some(open.last_record),
        _ => None,
    };
    let clock = Clock::resuming(speed, last_record);
    if clock.speed() != 1.0 {
        tracing::warn!(
            speed = clock.speed(),
            "the daemon clock runs {}x real time: for demos and tests only, never with a patient",
            clock.speed()
        );
    }
    tracing::info!(
        config = %config.source,
        rules = config.rules.rules.len(),
        rules_from = %config.rules_source,
        devices = config.devices.len(),
        "starting"
    );

    let metrics = Metrics::new(&config.chair).context("cannot set up metrics")?;
    let registry = metrics.registry();
    let wake = Arc::new(Notify::new());
    let (rings, drivers) = start_drivers(&config.devices, &clock, &wake);
    let devices = config
        .devices
        .iter()
        .map(|d| DeviceInfo {
            spec: DeviceSpec {
                id: d.id.clone(),
                silent_after: d.silent_after,
                measures_bp: d.profile.vitals.contains(&crate::vitals::Vital::Systolic),
            },
            profile: d.profile.name.clone(),
            vitals: d.profile.vitals.clone(),
            interval: d.interval,
        })
        .collect();
    let device_count = config.devices.len();
    let rules = Arc::new(RulesView::of(&config.rules));
    let (mut engine, handle) = EngineTask::new(config.rules, devices, rings, wake, metrics, clock);
    let writer = match recorder {
        Ok(opened) => {
            engine.attach_recorder(opened.sink, opened.highest_alarm_id, opened.open);
            Some(opened.writer)
        }
        Err(why) => {
            engine.recorder_unavailable(why);
            None
        }
    };
    if let Some(timeout) = sd_notify::watchdog_enabled()
        && let Some(watchdog) = Watchdog::new(timeout, ping_watchdog)
    {
        tracing::info!(
            timeout_ms = timeout.as_millis(),
            "feeding systemd's watchdog from the engine loop"
        );
        engine.set_watchdog(watchdog);
    }
    let engine = tokio::spawn(engine.run());
    let forwarder = match &config.alertmanager {
        Some(forward) => Some(start_forwarder(forward, &config.chair, &handle)?),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!("listening on http://{local}");
    // The drivers run and HTTP accepts connections: tell systemd (Type=notify) we are up.
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!(
            "monitoring {device_count} device(s), listening on {local}"
        )),
    ]);

    let app = router(AppState {
        engine: handle,
        registry,
        tokens: Arc::new(config.tokens),
        rules,
        database: Arc::new(config.recording.database.clone()),
        event_streams: Arc::new(tokio::sync::Semaphore::new(
            crate::server::MAX_EVENT_STREAMS,
        )),
    });
    crate::server::serve(listener, app, async {
        shutdown_signal().await;
        notify(&[NotifyState::Stopping]);
    })
    .await;
    for driver in drivers {
        driver.abort();
    }
    if let Some(forwarder) = forwarder {
        forwarder.abort();
    }
    engine.abort();
    // The engine task held the recorder's queue: once it is gone the writer flushes what is
    // queued and stops. Wait for that, so a clean stop loses nothing.
    let _ = engine.await;
    if let Some(writer) = writer {
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts forwarding alarms to the clinic's Alertmanager.
fn start_forwarder(
    forward: &ForwardConfig,
    chair: &str,
    handle: &EngineHandle,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let sink = HttpSink::new(forward.urls.clone()).map_err(anyhow::Error::msg)?;
    tracing::info!(urls = ?forward.urls, repeat_s = forward.repeat.as_secs_f64(), "forwarding alarms to Alertmanager");
    let events = handle.subscribe();
    let asking = handle.clone();
    let reporting = handle.clone();
    let links = forward::Links {
        sink,
        events,
        active_alarms: move || {
            let engine = asking.clone();
            async move { engine.status().await.ok().map(|status| status.alarms) }
        },
        report: move |failure| {
            let engine = reporting.clone();
            async move {
                let _ = engine
                    .daemon_failure(DaemonCondition::Forwarding, failure)
                    .await;
            }
        },
        utc_now: chrono::Utc::now,
    };
    Ok(tokio::spawn(forward::run(
        Forwarder::new(forward.clone(), chair.to_string()),
        links,
    )))
}

/// The recorder: `Err(why)` for a store that cannot be used (monitoring goes on, with the
/// recording-failure alarm); an error of the whole start only when another daemon is already
/// recording into the same database, because two daemons on one record is a configuration
/// mistake that must not run unnoticed.
/// The recorder as the daemon starts it, and what the store says about earlier runs.
struct OpenedRecorder {
    sink: RecorderSink,
    writer: std::thread::JoinHandle<()>,
    /// The session a crash or restart left open.
    open: Option<OpenSession>,
    /// The highest alarm id recorded: this run's alarms are numbered after it.
    highest_alarm_id: u64,
}

fn open_recorder(recording: &RecordingConfig) -> anyhow::Result<Result<OpenedRecorder, String>> {
    let mut store = match Store::open(&recording.database) {
        Ok(store) => store,
        Err(error @ StoreError::Locked { .. }) => {
            anyhow::bail!("{error}: is another vitalwatch already running with this database?")
        }
        Err(error) => {
            tracing::error!("cannot record sessions: {error}");
            return Ok(Err(error.to_string()));
        }
    };
    if let Some(days) = recording.keep_days {
        match store.prune(days, chrono::Utc::now(), PruneScope::Ended) {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, keep_days = days, "pruned old sessions"),
            Err(error) => tracing::warn!("cannot prune old sessions: {error}"),
        }
    }
    let open = match store.open_session() {
        Ok(open) => open,
        Err(error) => {
            tracing::error!("cannot read the open session: {error}");
            None
        }
    };
    let highest_alarm_id = store.highest_alarm_id().unwrap_or_else(|error| {
        tracing::error!("cannot read the highest recorded alarm id: {error}");
        0
    });
    tracing::info!(database = %recording.database.display(), "recording sessions");
    match crate::recorder::sink::start(store) {
        Ok((sink, writer)) => Ok(Ok(OpenedRecorder {
            sink,
            writer,
            open,
            highest_alarm_id,
        })),
        Err(error) => Ok(Err(format!("cannot start the recorder thread: {error}"))),
    }
}

/// Tells the service manager about `states`; nothing without `NOTIFY_SOCKET` (not under
/// systemd, or `Type=` other than notify). A failure is logged: monitoring goes on.
fn notify(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}

/// One `WATCHDOG=1`, sent by the engine loop on its tick.
fn ping_watchdog() {
    if let Err(error) = sd_notify::notify(&[NotifyState::Watchdog]) {
        tracing::warn!(%error, "cannot ping systemd's watchdog");
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: stopping"),
        () = terminate => tracing::info!("SIGTERM: stopping"),
    }
}
