//! The recorder's SQLite schema and its migrations.
//!
//! A recording is marked by `PRAGMA application_id` ([`APPLICATION_ID`]) and versioned by
//! `PRAGMA user_version` ([`SCHEMA_VERSION`]). `MIGRATIONS[n]` takes a database from version
//! `n` to `n + 1`; [`super::Store::open`] runs the missing ones in the transaction that opens
//! the store, so a migration is all or nothing. A migration, once released, never changes:
//! a new schema is a new entry.
//!
//! Conventions: every time is an integer, microseconds since the Unix epoch in UTC (`*_us`);
//! names (vitals, phases, priorities, changes, link states) are the lower-case words of the
//! API; tables are `STRICT`, so a value of the wrong type is refused, never converted.
//!
//! Version 1:
//!
//! - `run`: one row per time a daemon opened the store for writing. Alarm ids are unique only
//!   within one run, so alarm events carry theirs.
//! - `session`: one row per session. `session_key` is the store's own key: pseudonymous ids
//!   may repeat (a patient's second session). At most one session is open (`ended_us` NULL),
//!   enforced by the unique partial index `session_open`. `exported_us` is set by
//!   `mark_exported`, and `prune` may be told to delete only exported sessions.
//! - `reading`: one row per reading. `value` is NULL when the device reported the vital as
//!   unavailable; `quality` holds the quality flags' names, comma-separated (`''` for a good
//!   reading, `artefact,sensor_off` for a flagged one), so a new flag needs no new mapping.
//! - `event`: everything else, in one table so the session's timeline is one ordered scan
//!   (`at_us`, then `seq`, the write order): phases (`kind = 'phase'`; a session's start is its
//!   `baseline` phase, its end its `ended` phase), alarm transitions (`alarm`, with the columns
//!   of the alarm log and the event's full JSON), notes, link changes and gaps (`at_us` is the
//!   gap's start, `gap_to_us` its end, `detail` why). Per-kind `CHECK`s require each kind's
//!   columns. `detail` is a note's text, an alarm's message, a link change's detail or a gap's
//!   reason; `who` is who changed the phase, wrote the note, or acknowledged or paused the
//!   alarm.
//!
//! Readings and events go with their session (`ON DELETE CASCADE`; the store turns
//! `foreign_keys` on).

/// `PRAGMA application_id` of a vitalwatch recording: "VWRC" (vitalwatch recorder).
pub(super) const APPLICATION_ID: i32 = 0x5657_5243;

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 1;

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
pub(super) const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1];

const V1: &str = r#"
CREATE TABLE run (
    run INTEGER PRIMARY KEY,
    opened_us INTEGER NOT NULL,
    software TEXT NOT NULL
) STRICT;

CREATE TABLE session (
    session_key INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    ended_us INTEGER,
    exported_us INTEGER
) STRICT;
CREATE UNIQUE INDEX session_open ON session ((ended_us IS NULL)) WHERE ended_us IS NULL;
CREATE INDEX session_id ON session (id);
CREATE INDEX session_ended ON session (ended_us) WHERE ended_us IS NOT NULL;

CREATE TABLE reading (
    session_key INTEGER NOT NULL REFERENCES session (session_key) ON DELETE CASCADE,
    received_us INTEGER NOT NULL,
    device TEXT NOT NULL,
    vital TEXT NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    quality TEXT NOT NULL,
    device_us INTEGER
) STRICT;
CREATE INDEX reading_session_time ON reading (session_key, received_us);

CREATE TABLE event (
    seq INTEGER PRIMARY KEY,
    session_key INTEGER NOT NULL REFERENCES session (session_key) ON DELETE CASCADE,
    run INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('phase', 'alarm', 'note', 'link', 'gap')),
    who TEXT,
    phase TEXT CHECK (phase IN ('baseline', 'infusion', 'recovery', 'ended')),
    detail TEXT,
    device TEXT,
    link_state TEXT,
    gap_to_us INTEGER,
    alarm_id INTEGER,
    change TEXT,
    alarm_kind TEXT CHECK (alarm_kind IN ('physiological', 'technical')),
    priority TEXT CHECK (priority IN ('low', 'medium', 'high')),
    source TEXT,
    vital TEXT,
    value REAL,
    limit_value REAL,
    advice TEXT,
    json TEXT,
    CHECK (kind <> 'phase' OR (phase IS NOT NULL AND who IS NOT NULL)),
    CHECK (kind <> 'note' OR (detail IS NOT NULL AND who IS NOT NULL)),
    CHECK (kind <> 'link' OR (device IS NOT NULL AND link_state IS NOT NULL)),
    CHECK (kind <> 'gap' OR (gap_to_us IS NOT NULL AND gap_to_us >= at_us AND detail IS NOT NULL)),
    CHECK (kind <> 'alarm' OR (alarm_id IS NOT NULL AND change IS NOT NULL
        AND alarm_kind IS NOT NULL AND priority IS NOT NULL AND source IS NOT NULL
        AND device IS NOT NULL AND detail IS NOT NULL AND json IS NOT NULL))
) STRICT;
CREATE INDEX event_session_time ON event (session_key, at_us);
"#;
