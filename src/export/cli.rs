//! The `vitalwatch sessions` and `vitalwatch export` commands: which database to read, the
//! session listing, writing an export to a file (whole or not at all) or to standard output,
//! and the progress bar drawn on a terminal.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;

use super::{ExportError, Format, Options, Session, find_session};
use crate::config::Config;
use crate::recorder::{SessionSummary, Store};

/// A command's failure: the message, and whether it was the user's input (exit 2) or the
/// system (exit 1).
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub usage: bool,
}

impl CliError {
    fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            usage: true,
        }
    }
    fn failure(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            usage: false,
        }
    }
}

impl From<ExportError> for CliError {
    fn from(error: ExportError) -> Self {
        let usage = matches!(
            error,
            ExportError::UnknownSession { .. }
                | ExportError::AmbiguousSession { .. }
                | ExportError::Invalid(_)
        );
        CliError {
            message: error.to_string(),
            usage,
        }
    }
}

/// The session database: `--database`, else the config's `[recording] database` (the
/// built-in config's without `--config`).
pub fn database_path(config: Option<&Path>, database: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(database) = database {
        return Ok(database.to_path_buf());
    }
    let config = match config {
        Some(path) => Config::load(path),
        None => Config::built_in(),
    }
    .map_err(|errors| CliError::usage(errors.to_string()))?;
    Ok(config.recording.database)
}

fn open(database: &Path) -> Result<Store, CliError> {
    if !database.exists() {
        return Err(CliError::usage(format!(
            "no session database at {}: no session has been recorded there (give the daemon's \
             database with --database FILE or its config with --config FILE)",
            database.display()
        )));
    }
    Store::open_read_only(database).map_err(|e| CliError::failure(e.to_string()))
}

/// `vitalwatch sessions`: every recorded session, oldest first, as a table or as JSON.
pub fn sessions(database: &Path, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let store = open(database)?;
    let sessions = store
        .sessions()
        .map_err(|e| CliError::failure(e.to_string()))?;
    let io = |e: std::io::Error| CliError::failure(format!("cannot write the listing: {e}"));
    if json {
        serde_json::to_writer_pretty(&mut *out, &sessions)
            .map_err(|e| CliError::failure(e.to_string()))?;
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    if sessions.is_empty() {
        writeln!(out, "no session recorded in {}", database.display()).map_err(io)?;
        return Ok(());
    }
    let mut rows = vec![[
        "KEY".to_string(),
        "ID".into(),
        "STARTED (UTC)".into(),
        "ENDED (UTC)".into(),
        "DURATION".into(),
        "ALARMS H/M/L".into(),
        "EXPORTED".into(),
        "PHASES".into(),
    ]];
    for s in &sessions {
        rows.push(session_row(s));
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(io)?;
    }
    Ok(())
}

fn session_row(s: &SessionSummary) -> [String; 8] {
    let time = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let duration = s.ended.map_or_else(
        || "open".to_string(),
        |ended| {
            let total = (ended - s.started).num_seconds().max(0);
            format!("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
        },
    );
    let phases: Vec<String> = s
        .phases
        .iter()
        .map(|p| format!("{} {}", p.phase, p.at.format("%H:%M")))
        .collect();
    [
        s.key.0.to_string(),
        s.id.to_string(),
        time(s.started),
        s.ended.map_or_else(|| "-".to_string(), time),
        duration,
        format!("{}/{}/{}", s.alarms.high, s.alarms.medium, s.alarms.low),
        s.exported.map_or_else(|| "-".to_string(), time),
        phases.join(", "),
    ]
}

/// What `vitalwatch export` was asked.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub database: PathBuf,
    pub session: String,
    pub key: Option<i64>,
    pub format: Format,
    /// `None`: standard output.
    pub out: Option<PathBuf>,
    pub interval_s: Option<u32>,
    /// Record the export in the database (needs it open for writing: the daemon stopped).
    pub mark_exported: bool,
}

/// `vitalwatch export`: writes the export, then says on stderr what it wrote.
pub fn export(request: &ExportRequest) -> Result<(), CliError> {
    if request.interval_s.is_some() && request.format != Format::Fhir {
        return Err(CliError::usage(format!(
            "--interval applies to the fhir format only, not to {}",
            request.format
        )));
    }
    let stdout = std::io::stdout();
    if request.out.is_none() && request.format.is_binary() && stdout.is_terminal() {
        return Err(CliError::usage(format!(
            "refusing to write a binary {} file to the terminal: give --out FILE or redirect the output",
            request.format
        )));
    }
    let store = open(&request.database)?;
    let summary = find_session(&store, &request.session, request.key)?;
    let session = Session::load(&store, summary)?;
    let options = Options {
        interval_s: request.interval_s,
        generated: Utc::now(),
    };
    let started = Instant::now();
    let mut bar = ProgressBar::new(std::io::stderr().is_terminal());
    let mut progress = |fraction: f64| bar.show(fraction);
    let stats = match &request.out {
        Some(path) => {
            let partial = partial_path(path);
            let file = File::create(&partial).map_err(|e| {
                CliError::failure(format!("cannot create {}: {e}", partial.display()))
            })?;
            let mut writer = BufWriter::with_capacity(256 * 1024, file);
            let result = super::export(
                &store,
                &session,
                request.format,
                &options,
                &mut writer,
                &mut progress,
            )
            .and_then(|stats| {
                let file = writer
                    .into_inner()
                    .map_err(|e| ExportError::Io(e.into_error()))?;
                file.sync_all()?;
                Ok(stats)
            });
            match result {
                Ok(stats) => {
                    std::fs::rename(&partial, path).map_err(|e| {
                        CliError::failure(format!(
                            "cannot move {} to {}: {e}",
                            partial.display(),
                            path.display()
                        ))
                    })?;
                    stats
                }
                Err(error) => {
                    let _ = std::fs::remove_file(&partial);
                    bar.clear();
                    return Err(error.into());
                }
            }
        }
        None => {
            let mut writer = BufWriter::with_capacity(256 * 1024, stdout.lock());
            match super::export(
                &store,
                &session,
                request.format,
                &options,
                &mut writer,
                &mut progress,
            ) {
                Ok(stats) => stats,
                // A closed pipe (`| head`) is the reader's choice.
                Err(ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    bar.clear();
                    return Ok(());
                }
                Err(error) => {
                    bar.clear();
                    return Err(error.into());
                }
            }
        }
    };
    bar.clear();
    let target = request.out.as_ref().map_or_else(
        || "standard output".to_string(),
        |p| p.display().to_string(),
    );
    eprintln!(
        "exported session {} (key {}) as {}: {} readings, {} bytes, to {} in {:.2} s",
        session.summary.id,
        session.summary.key.0,
        request.format,
        stats.readings,
        stats.bytes,
        target,
        started.elapsed().as_secs_f64()
    );
    if request.mark_exported {
        drop(store);
        let marked = Store::open(&request.database)
            .and_then(|mut store| store.mark_exported(session.summary.key, Utc::now()));
        match marked {
            Ok(()) => eprintln!("marked session {} as exported", session.summary.id),
            Err(error) => {
                return Err(CliError::failure(format!(
                    "the export is complete, but the session could not be marked as exported: {error}"
                )));
            }
        }
    }
    Ok(())
}

/// `FILE.partial` beside `FILE`: the export is written there, and renamed when whole.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub struct ProgressBar {
    enabled: bool,
    shown: Option<u32>,
}

impl ProgressBar {
    pub fn new(enabled: bool) -> Self {
        ProgressBar {
            enabled,
            shown: None,
        }
    }

    pub fn show(&mut self, fraction: f64) {
        if !self.enabled {
            return;
        }
        let percent = (fraction.clamp(0.0, 1.0) * 100.0).round() as u32;
        if self.shown == Some(percent) {
            return;
        }
        self.shown = Some(percent);
        let filled = (percent as usize * 30) / 100;
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\rexporting [{}{}] {percent:3} %",
            "#".repeat(filled),
            ".".repeat(30 - filled)
        );
        let _ = stderr.flush();
    }

    pub fn clear(&mut self) {
        if self.enabled && self.shown.is_some() {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
            self.shown = None;
        }
    }
}
