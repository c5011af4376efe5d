//! The session recorder's durable store: every reading, alarm transition, phase change, note,
//! link change and gap of a dosing session, kept in an SQLite database so that after the
//! session the clinician has the whole record, and a crash loses nothing that was committed.
//!
//! **What it is**: a synchronous storage layer. [`Store::open`] a database (created or migrated
//! on open), [`Store::write`] batches of [`Record`]s (one transaction per batch), query it
//! for the export and the CLI ([`Store::sessions`], [`Store::open_session`],
//! [`Store::readings`], [`Store::events`]), and [`Store::prune`] old sessions.
//!
//! **What it is not**: not the sink that feeds it (it knows nothing of the engine task and
//! has no async: the integration's sink task turns events into records, batches them, and
//! calls `write` on a blocking thread; the `Store` is `Send`); not an export format (EDF+ and
//! FHIR are built on the queries); not the alarm system (it reports a failed write; raising
//! the recording-failure technical alarm is the integration's); not the clinic's own record
//! or backup.
//!
//! **Durability.** The database is in WAL mode with `synchronous = FULL`: when `write`
//! returns `Ok`, the batch's commit has been synced to disk, so it survives a process crash
//! and, if the disk honours flushes, a power loss. A batch is all or nothing: a crash, a full
//! disk or a bad record in the middle of it leaves none of it, and the store as the last
//! committed batch left it. What the daemon had not yet handed to `write` is lost in a crash;
//! the integration records that as a [`Record::Gap`] ("daemon restarted") when it resumes the
//! open session ([`Store::open_session`]).
//!
//! **One writer.** `Store::open` takes an exclusive `flock` on `<database>.lock` beside the
//! database, and holds it while the store lives; a second daemon on the same database gets
//! [`StoreError::Locked`]. The kernel releases the lock when the process dies, so a crash never
//! leaves a stale lock. The lock file stays (deleting it while a daemon runs would let a second
//! one in). It is a separate file because a second descriptor on the database itself would,
//! when closed, drop SQLite's own POSIX locks. Readers ([`Store::open_read_only`], for the CLI
//! and export while the daemon runs) take no lock: WAL lets them read the last committed state
//! while the daemon writes.
//!
//! **Disk full.** When the filesystem is full, SQLite fails the write with `SQLITE_FULL` and
//! `write` returns [`StoreError::DiskFull`] ([`StoreError::is_disk_full`]): nothing of the batch
//! is written and the store stays usable. Once there is room again (space freed on the disk,
//! or old sessions pruned with [`Store::prune`], whose freed pages SQLite reuses), the next
//! write succeeds; the caller keeps the failed batch and writes it again, or records a gap. The
//! tests make a disk full with `PRAGMA max_page_count` (a size limit that SQLite reports with
//! the same `SQLITE_FULL`), and make room by raising the limit or by pruning.
//!
//! **Times** are stored as integer microseconds since the Unix epoch, UTC (anything finer is
//! truncated); queries give `DateTime<Utc>`, which serialises as RFC 3339. **Session ids** are
//! pseudonymous and may repeat (a patient's second session), so every stored session has its
//! own [`SessionKey`]. The schema is described in `schema.rs`.

mod query;
mod record;
mod schema;
pub mod sink;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior, params};

pub use query::{
    AlarmCounts, EventDetail, OpenSession, PhaseEntry, SessionKey, SessionSummary, StoredAlarm,
    StoredEvent, StoredReading,
};
pub use record::{AlarmRecord, ReadingRecord, Record};

use crate::vitals::{Phase, Quality, SessionId};
use schema::{APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};

/// How long a statement waits for a lock held by another connection (a reader running WAL
/// recovery, a checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the store could not do what was asked. Every variant names the database's path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database or its lock file cannot be created or opened: a missing directory, no
    /// permission, a directory in its place.
    #[error("cannot open or create the recording database {}: {detail}", .path.display())]
    Open { path: PathBuf, detail: String },
    /// The file exists but is not an SQLite database (or is damaged beyond recognition).
    #[error("{} is not a database (is it the right file?)", .path.display())]
    NotADatabase { path: PathBuf },
    /// The file is an SQLite database, but not a vitalwatch recording.
    #[error("{} is a database but not a vitalwatch recording ({detail}); refusing to touch it", .path.display())]
    NotARecording { path: PathBuf, detail: String },
    /// The recording's schema is one this build does not read: newer (written by a later
    /// vitalwatch), or older when opened read-only (open it once for writing to migrate it).
    #[error(
        "{} holds a recording of schema version {found}; this vitalwatch reads version {supported}{}",
        .path.display(),
        if *.found < *.supported { " (open it with the daemon once to migrate it)" } else { "" }
    )]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Another process (another vitalwatch daemon?) has the database open for writing.
    #[error(
        "{} is in use by another process (another vitalwatch daemon on the same database?): its lock file {} is held",
        .path.display(),
        .lock.display()
    )]
    Locked { path: PathBuf, lock: PathBuf },
    /// The disk (or the database's size limit) is full. Nothing of the batch was written and
    /// the store is still usable: write the batch again once there is room.
    #[error("the disk holding {} is full: nothing of the batch was written", .path.display())]
    DiskFull { path: PathBuf },
    /// Record `index` of the batch cannot be stored (it names a session that is not open,
    /// starts a session while another is open, breaks a constraint...). Nothing of the batch
    /// was written.
    #[error(
        "record {index} of the batch cannot be recorded: {reason}; nothing of the batch was written"
    )]
    InvalidRecord { index: usize, reason: String },
    /// The store was opened read-only.
    #[error("{} was opened read-only", .path.display())]
    ReadOnly { path: PathBuf },
    /// No session has that key.
    #[error("{} has no session with key {key}", .path.display())]
    NoSuchSession { path: PathBuf, key: i64 },
    /// The database holds something this build cannot read, or fails its integrity check.
    #[error("the recording database {} is damaged: {detail}", .path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// Any other SQLite failure (an I/O error, a lock held too long by another connection).
    #[error("recording database {}: {doing}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Whether the write failed because the disk (or the size limit) is full: the caller keeps
    /// its batch and tries again once there is room.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }

    fn from_sql(path: &Path, doing: &'static str, error: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase { path },
            Some(ErrorCode::CannotOpen) => StoreError::Open {
                path,
                detail: error.to_string(),
            },
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                detail: error.to_string(),
            },
            _ => StoreError::Sqlite {
                path,
                doing,
                source: error,
            },
        }
    }
}

/// Which ended sessions [`Store::prune`] may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneScope {
    /// Every session that ended before the cutoff.
    Ended,
    /// Only those that have also been exported ([`Store::mark_exported`]).
    Exported,
}

/// How long opening waits for the lock before calling the database taken.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A recording database, open for writing (one per database, see the module comment) or
/// read-only.
#[derive(Debug)]
pub struct Store {
    // Fields drop in order: the connection closes (checkpointing the WAL) before the writer's
    // lock is released.
    conn: Connection,
    path: PathBuf,
    /// `None` when opened read-only.
    writer: Option<Writer>,
}

#[derive(Debug)]
struct Writer {
    /// Locked (`flock`, exclusive) for the store's life.
    _lock: File,
    /// This open's row in `run`: alarm ids are unique only within one run.
    run: i64,
    /// The open session as the last committed batch left it: its id and key.
    open: Option<(SessionId, i64)>,
}

impl Store {
    /// Opens the recording at `path` for writing, creating it (and its schema) if the file
    /// does not exist or is empty, and migrating an older schema. Refuses a file that is not a
    /// database, another application's database, a newer schema, and a database another
    /// process has open for writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let lock_path = lock_path_of(&path);
        let open_error = |detail: String| StoreError::Open {
            path: path.clone(),
            detail,
        };
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| open_error(format!("its lock file {}: {e}", lock_path.display())))?;
        // A lock is held by an open file description, which a fork shares until its exec: a
        // store just closed (or a daemon just exiting) may hold it a moment longer. Wait that
        // moment before calling the database taken.
        let waited_since = std::time::Instant::now();
        let mut attempt = lock.try_lock();
        while matches!(attempt, Err(TryLockError::WouldBlock)) && waited_since.elapsed() < LOCK_WAIT
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            attempt = lock.try_lock();
        }
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path,
                    lock: lock_path,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(open_error(format!(
                    "locking its lock file {}: {e}",
                    lock_path.display()
                )));
            }
        }

        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::from_sql(&path, "opening it", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql_err(&path, "setting its busy timeout"))?;
        let found = Identity::read(&conn, &path)?;
        found.check(&path, false)?;

        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(sql_err(&path, "switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(format!(
                "SQLite cannot use WAL mode here (journal mode stays {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(sql_err(
                &path,
                "setting synchronous = FULL and foreign keys",
            ))?;

        let run = migrate(&mut conn, &path, found.version)?;
        let mut store = Store {
            conn,
            path,
            writer: None,
        };
        let open = store.open_session_key()?;
        store.writer = Some(Writer {
            _lock: lock,
            run,
            open,
        });
        Ok(store)
    }

    /// Opens the recording at `path` for reading only (the CLI and export, while the daemon may
    /// be writing): no lock, no migration, no write. The schema must be this build's.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::from_sql(&path, "opening it read-only", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql_err(&path, "setting its busy timeout"))?;
        Identity::read(&conn, &path)?.check(&path, true)?;
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(sql_err(&path, "setting query_only"))?;
        Ok(Store {
            conn,
            path,
            writer: None,
        })
    }

    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `records` in one transaction: all of them, or (on any error) none. Records are
    /// applied in order, so a batch may start a session and record its readings.
    pub fn write(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let Store { conn, path, writer } = self;
        let writer = writer
            .as_mut()
            .ok_or_else(|| StoreError::ReadOnly { path: path.clone() })?;
        if records.is_empty() {
            return Ok(());
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::from_sql(path, "beginning a batch", e))?;
        let mut open = writer.open.clone();
        for (index, record) in records.iter().enumerate() {
            insert(&tx, writer.run, &mut open, record)
                .map_err(|e| e.into_store_error(path, index))?;
        }
        // Dropping `tx` on an error above rolls the batch back.
        tx.commit()
            .map_err(|e| StoreError::from_sql(path, "committing a batch", e))?;
        writer.open = open;
        Ok(())
    }

    /// Records that the session `key` was exported at `at` (for [`PruneScope::Exported`]).
    pub fn mark_exported(&mut self, key: SessionKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.writable()?;
        let changed = self
            .conn
            .execute(
                "UPDATE session SET exported_us = ?2 WHERE session_key = ?1",
                params![key.0, micros(at)],
            )
            .map_err(|e| StoreError::from_sql(&self.path, "marking a session exported", e))?;
        if changed == 0 {
            return Err(StoreError::NoSuchSession {
                path: self.path.clone(),
                key: key.0,
            });
        }
        Ok(())
    }

    /// Deletes the sessions (with their readings and events) that ended more than `keep_days`
    /// days before `now` and, with [`PruneScope::Exported`], were exported. Open sessions are
    /// never deleted. Returns how many sessions went. The space is reused by later writes (the
    /// file does not shrink).
    pub fn prune(
        &mut self,
        keep_days: u32,
        now: DateTime<Utc>,
        scope: PruneScope,
    ) -> Result<u64, StoreError> {
        self.writable()?;
        let cutoff = now
            .checked_sub_signed(chrono::Duration::days(keep_days.into()))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::from_sql(path, "beginning a prune", e))?;
        let deleted = tx
            .execute(
                "DELETE FROM session WHERE ended_us IS NOT NULL AND ended_us < ?1 \
                 AND (?2 = 0 OR exported_us IS NOT NULL)",
                params![micros(cutoff), scope == PruneScope::Exported],
            )
            .map_err(|e| StoreError::from_sql(path, "pruning sessions", e))?;
        tx.commit()
            .map_err(|e| StoreError::from_sql(path, "committing a prune", e))?;
        Ok(deleted as u64)
    }

    /// Runs SQLite's `integrity_check` and `foreign_key_check`: `Ok` when both find nothing
    /// wrong, [`StoreError::Corrupt`] with what they found otherwise. It reads the whole
    /// database: seconds for a large one.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let err = |e| StoreError::from_sql(&self.path, "checking integrity", e);
        let mut problems = Vec::new();
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let line: String = row.get(0).map_err(err)?;
            if line != "ok" {
                problems.push(line);
            }
        }
        let mut stmt = self.conn.prepare("PRAGMA foreign_key_check").map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let table: String = row.get(0).map_err(err)?;
            problems.push(format!("a row of {table} refers to a missing session"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: problems.join("; "),
            })
        }
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.writer {
            Some(_) => Ok(()),
            None => Err(StoreError::ReadOnly {
                path: self.path.clone(),
            }),
        }
    }
}

/// Turns an SQLite error into the store's, saying what the store was doing.
fn sql_err<'a>(
    path: &'a Path,
    doing: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |e| StoreError::from_sql(path, doing, e)
}

/// `<database>.lock`.
fn lock_path_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// What a database says it is, before the store touches it.
struct Identity {
    application_id: i32,
    version: i64,
    /// Tables, indexes and the like: none in a new or empty file.
    objects: i64,
}

impl Identity {
    fn read(conn: &Connection, path: &Path) -> Result<Identity, StoreError> {
        let err = |e| StoreError::from_sql(path, "reading its header", e);
        Ok(Identity {
            application_id: conn
                .pragma_query_value(None, "application_id", |row| row.get(0))
                .map_err(err)?,
            version: conn
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .map_err(err)?,
            objects: conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
                .map_err(err)?,
        })
    }

    fn check(&self, path: &Path, read_only: bool) -> Result<(), StoreError> {
        let fresh = self.application_id == 0 && self.version == 0 && self.objects == 0;
        if fresh && !read_only {
            return Ok(());
        }
        if fresh {
            return Err(StoreError::NotARecording {
                path: path.to_path_buf(),
                detail: "it is empty".into(),
            });
        }
        if self.application_id != APPLICATION_ID {
            return Err(StoreError::NotARecording {
                path: path.to_path_buf(),
                detail: format!(
                    "its application id is {:#x}, a recording's is {APPLICATION_ID:#x}",
                    self.application_id
                ),
            });
        }
        let readable = if read_only {
            self.version == SCHEMA_VERSION
        } else {
            (0..=SCHEMA_VERSION).contains(&self.version)
        };
        if !readable {
            return Err(StoreError::SchemaVersion {
                path: path.to_path_buf(),
                found: self.version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }
}

/// Brings the schema from `from` to [`SCHEMA_VERSION`] and records this open as a new run, in
/// one transaction. Returns the run.
fn migrate(conn: &mut Connection, path: &Path, from: i64) -> Result<i64, StoreError> {
    let err = |doing| sql_err(path, doing);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("beginning the schema check"))?;
    let from = usize::try_from(from).unwrap_or(usize::MAX);
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql)
            .map_err(err("creating or migrating its schema"))?;
        tx.pragma_update(None, "user_version", version as i64 + 1)
            .map_err(err("setting its schema version"))?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(err("setting its application id"))?;
    tx.execute(
        "INSERT INTO run (opened_us, software) VALUES (?1, ?2)",
        params![
            micros(Utc::now()),
            concat!("vitalwatch ", env!("CARGO_PKG_VERSION"))
        ],
    )
    .map_err(err("recording this run"))?;
    let run = tx.last_insert_rowid();
    tx.commit().map_err(err("committing the schema"))?;
    Ok(run)
}

/// Why one record of a batch failed.
enum RecordError {
    /// The record does not fit the store's state (no such open session...).
    Invalid(String),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for RecordError {
    fn from(e: rusqlite::Error) -> Self {
        RecordError::Sql(e)
    }
}

impl RecordError {
    fn into_store_error(self, path: &Path, index: usize) -> StoreError {
        match self {
            RecordError::Invalid(reason) => StoreError::InvalidRecord { index, reason },
            RecordError::Sql(e)
                if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
            {
                StoreError::InvalidRecord {
                    index,
                    reason: e.to_string(),
                }
            }
            RecordError::Sql(e) => StoreError::from_sql(path, "writing a batch", e),
        }
    }
}

/// The key of the open session `session`, or why the record cannot be filed.
fn open_key(open: &Option<(SessionId, i64)>, session: &SessionId) -> Result<i64, RecordError> {
    match open {
        Some((id, key)) if id == session => Ok(*key),
        // The reasons name sessions by key, never by id: the recorder logs them.
        Some((_, key)) => Err(RecordError::Invalid(format!(
            "it belongs to another session than the open one (key {key})"
        ))),
        None => Err(RecordError::Invalid(
            "it belongs to a session that is not open".to_string(),
        )),
    }
}

fn insert(
    tx: &Transaction<'_>,
    run: i64,
    open: &mut Option<(SessionId, i64)>,
    record: &Record,
) -> Result<(), RecordError> {
    match record {
        Record::Reading(r) => {
            let key = open_key(open, &r.session)?;
            tx.prepare_cached(
                "INSERT INTO reading \
                 (session_key, received_us, device, vital, value, unit, quality, device_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                key,
                micros(r.received),
                r.device.as_str(),
                r.vital.as_str(),
                r.value,
                r.vital.unit(),
                quality_text(r.quality),
                r.device_time.map(micros),
            ])?;
        }
        Record::SessionStarted { session, at, by } => {
            if let Some((_, key)) = open {
                return Err(RecordError::Invalid(format!(
                    "a session (key {key}) is still open: end it before starting another"
                )));
            }
            tx.prepare_cached("INSERT INTO session (id, started_us) VALUES (?1, ?2)")?
                .execute(params![session.as_str(), micros(*at)])?;
            let key = tx.last_insert_rowid();
            insert_phase(tx, run, key, Phase::Baseline, *at, by)?;
            *open = Some((session.clone(), key));
        }
        Record::PhaseChanged {
            session,
            phase,
            at,
            by,
        } => {
            if *phase == Phase::Ended {
                return Err(RecordError::Invalid(
                    "a session's end is recorded with Record::SessionEnded, not as a phase change"
                        .into(),
                ));
            }
            let key = open_key(open, session)?;
            insert_phase(tx, run, key, *phase, *at, by)?;
        }
        Record::SessionEnded { session, at, by } => {
            let key = open_key(open, session)?;
            tx.prepare_cached("UPDATE session SET ended_us = ?2 WHERE session_key = ?1")?
                .execute(params![key, micros(*at)])?;
            insert_phase(tx, run, key, Phase::Ended, *at, by)?;
            *open = None;
        }
        Record::Alarm(a) => {
            let key = open_key(open, &a.session)?;
            let alarm = i64::try_from(a.alarm).map_err(|_| {
                RecordError::Invalid(format!("alarm id {} is out of range", a.alarm))
            })?;
            tx.prepare_cached(
                "INSERT INTO event (session_key, run, at_us, kind, who, detail, device, \
                 alarm_id, change, alarm_kind, priority, source, vital, value, limit_value, \
                 advice, json) \
                 VALUES (?1, ?2, ?3, 'alarm', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                 ?15, ?16)",
            )?
            .execute(params![
                key,
                run,
                micros(a.at),
                a.by,
                a.message,
                a.device.as_str(),
                alarm,
                a.change,
                a.kind.as_str(),
                a.priority.as_str(),
                a.source,
                a.vital.map(|v| v.as_str()),
                a.value,
                a.limit,
                a.advice,
                a.json,
            ])?;
        }
        Record::Note {
            session,
            text,
            by,
            at,
        } => {
            let key = open_key(open, session)?;
            tx.prepare_cached(
                "INSERT INTO event (session_key, run, at_us, kind, who, detail) \
                 VALUES (?1, ?2, ?3, 'note', ?4, ?5)",
            )?
            .execute(params![key, run, micros(*at), by, text])?;
        }
        Record::Link {
            session,
            device,
            state,
            detail,
            at,
        } => {
            let key = open_key(open, session)?;
            tx.prepare_cached(
                "INSERT INTO event (session_key, run, at_us, kind, device, link_state, detail) \
                 VALUES (?1, ?2, ?3, 'link', ?4, ?5, ?6)",
            )?
            .execute(params![
                key,
                run,
                micros(*at),
                device.as_str(),
                state.as_str(),
                detail
            ])?;
        }
        Record::Gap {
            session,
            from,
            to,
            why,
        } => {
            let key = open_key(open, session)?;
            if to < from {
                return Err(RecordError::Invalid(format!(
                    "a gap cannot end ({to}) before it starts ({from})"
                )));
            }
            tx.prepare_cached(
                "INSERT INTO event (session_key, run, at_us, kind, gap_to_us, detail) \
                 VALUES (?1, ?2, ?3, 'gap', ?4, ?5)",
            )?
            .execute(params![key, run, micros(*from), micros(*to), why])?;
        }
    }
    Ok(())
}

fn insert_phase(
    tx: &Transaction<'_>,
    run: i64,
    key: i64,
    phase: Phase,
    at: DateTime<Utc>,
    by: &str,
) -> Result<(), RecordError> {
    tx.prepare_cached(
        "INSERT INTO event (session_key, run, at_us, kind, phase, who) \
         VALUES (?1, ?2, ?3, 'phase', ?4, ?5)",
    )?
    .execute(params![key, run, micros(at), phase.as_str(), by])?;
    Ok(())
}

/// Microseconds since the Unix epoch (finer parts truncated).
fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The quality flags' names, comma-separated; empty for a good reading.
fn quality_text(quality: Quality) -> String {
    let mut text = String::new();
    for name in quality.names() {
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(name);
    }
    text
}
