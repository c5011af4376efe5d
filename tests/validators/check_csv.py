"""Reads vitalwatch's CSV exports with Python's csv module and compares them with what the
test recorded.

usage: check_csv.py READINGS.csv EVENTS.csv EXPECTED.json

EXPECTED.json (written by tests/export.rs from its own description of the session):
  {"readings": [[time_utc, seconds_since_infusion_start, phase, device, vital, value, unit,
                 quality], ...],
   "events": [[time_utc, kind, change, priority, rule_or_condition, device, who, text], ...]}
Numbers are compared as numbers, everything else as text. A cell the exporter guarded against
formula injection (a leading ' before = + - @ tab CR) is read back without the guard.
Exits 1 with the differences when anything differs.
"""

import csv
import io
import json
import sys

READING_COLUMNS = ["time_utc", "seconds_since_infusion_start", "phase", "device", "vital",
                   "value", "unit", "quality", "device_time_utc"]
EVENT_COLUMNS = ["time_utc", "seconds_since_infusion_start", "kind", "change", "priority",
                 "rule_or_condition", "alarm_kind", "alarm_id", "device", "vital", "value",
                 "limit", "who", "text", "advice", "until_utc"]
FORMULA = ("=", "+", "-", "@", "\t", "\r")

failures = []


def fail(message):
    failures.append(message)


def unguard(cell):
    if cell.startswith("'") and cell[1:].startswith(FORMULA):
        return cell[1:]
    return cell


def read(path, columns):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\xef\xbb\xbf"):
        fail(f"{path}: no UTF-8 byte-order mark")
    text = data.decode("utf-8-sig")
    header_line = text.split("\n", 1)[0]
    if not header_line.endswith("\r") or not text.endswith("\r\n"):
        fail(f"{path}: rows do not end with CRLF (RFC 4180)")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != columns:
        fail(f"{path}: header {rows[0] if rows else None} != {columns}")
        return []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            fail(f"{path}:{number}: {len(row)} cells, expected {len(columns)}: {row}")
    return [dict(zip(columns, row)) for row in rows[1:]]


def same(actual, expected):
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return float(actual) == float(expected)
        except ValueError:
            return False
    if expected is None:
        return actual == ""
    return actual == expected


def main():
    readings_path, events_path, expected_path = sys.argv[1:4]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)

    readings = read(readings_path, READING_COLUMNS)
    want = expected["readings"]
    if len(readings) != len(want):
        fail(f"{len(readings)} reading rows, expected {len(want)}")
    keys = ["time_utc", "seconds_since_infusion_start", "phase", "device", "vital", "value",
            "unit", "quality"]
    for index, (row, exp) in enumerate(zip(readings, want)):
        for key, value in zip(keys, exp):
            actual = unguard(row[key])
            if not same(actual, value):
                fail(f"reading row {index + 2}: {key} is {actual!r}, expected {value!r}")
        if len(failures) > 20:
            break

    events = read(events_path, EVENT_COLUMNS)
    want = expected["events"]
    if len(events) != len(want):
        fail(f"{len(events)} event rows, expected {len(want)}")
    keys = ["time_utc", "kind", "change", "priority", "rule_or_condition", "device", "who", "text"]
    for index, (row, exp) in enumerate(zip(events, want)):
        for key, value in zip(keys, exp):
            actual = unguard(row[key])
            if not same(actual, value):
                fail(f"event row {index + 2}: {key} is {actual!r}, expected {value!r}")

    # The guard is there: raw cells starting a formula are never left bare.
    for path, rows in ((readings_path, readings), (events_path, events)):
        for row in rows:
            for key, cell in row.items():
                if cell.startswith(FORMULA) and key not in ("value", "limit", "seconds_since_infusion_start"):
                    fail(f"{path}: cell {key}={cell!r} would be evaluated as a formula")

    if failures:
        print("CSV check FAILED:")
        for message in failures[:40]:
            print("  " + message)
        sys.exit(1)
    print(f"CSV OK: {len(readings)} readings and {len(events)} events match the recording "
          f"(python {sys.version.split()[0]} csv module)")


main()
