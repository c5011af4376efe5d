"""Opens vitalwatch's EDF+ export with pyedflib (EDFlib: strict, it refuses any fault in the
header, the records or the annotations) and with MNE (its own, lenient reader), and checks
labels, rates, values and annotations against what the test recorded.

usage: check_edf.py FILE.edf EXPECTED.json

EXPECTED.json (written by tests/export.rs from its own description of the session):
  {"patient_code": "KAP-0042", "start": "2026-11-25T09:00:00", "duration_s": 720,
   "signals": [{"label", "rate", "dimension", "samples": [[t_seconds, value or null], ...]}],
   "annotation_count": n,
   "annotations": [[onset_s, duration_s or null, text that the annotation's text contains]]}
A null sample is "no value": the signal's physical minimum (digital -32768).
Exits 1 with every difference found.
"""

import json
import sys
from datetime import datetime

import mne
import numpy as np
import pyedflib

failures = []


def fail(message):
    failures.append(message)


def close(a, b, tolerance=1e-6):
    return abs(a - b) <= tolerance


def main():
    path, expected_path = sys.argv[1:3]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    with open(path, "rb") as f:
        header = f.read(256)
    if any(b < 32 or b > 126 for b in header):
        fail("the main header has bytes that are not printable ASCII")
    if header[192:197] != b"EDF+C":
        fail(f"reserved field {header[192:236]!r} does not start with EDF+C")

    # pyedflib: raises OSError on any format error.
    reader = pyedflib.EdfReader(path)
    try:
        labels = reader.getSignalLabels()
        want_labels = [s["label"] for s in expected["signals"]]
        if labels != want_labels:
            fail(f"pyedflib labels {labels}, expected {want_labels}")
        if reader.getPatientCode() != expected["patient_code"]:
            fail(f"patient code {reader.getPatientCode()!r}, expected {expected['patient_code']!r}")
        start = reader.getStartdatetime()
        if start != datetime.fromisoformat(expected["start"]):
            fail(f"start {start}, expected {expected['start']}")
        if reader.getFileDuration() < expected["duration_s"]:
            fail(f"file lasts {reader.getFileDuration()} s, less than {expected['duration_s']}")
        frequencies = list(reader.getSampleFrequencies())
        for index, signal in enumerate(expected["signals"]):
            if index >= len(labels):
                break
            if not close(frequencies[index], signal["rate"]):
                fail(f"{signal['label']}: {frequencies[index]} Hz, expected {signal['rate']}")
            if reader.getPhysicalDimension(index) != signal["dimension"]:
                fail(f"{signal['label']}: dimension {reader.getPhysicalDimension(index)!r}")
            values = reader.readSignal(index)
            no_value = reader.getPhysicalMinimum(index)
            for t, want in signal["samples"]:
                i = int(round(t * signal["rate"]))
                got = values[i]
                if want is None:
                    if not close(got, no_value):
                        fail(f"{signal['label']} at {t} s: {got}, expected no value ({no_value})")
                elif not close(got, want, 1e-3):
                    fail(f"{signal['label']} at {t} s: {got}, expected {want}")
        onsets, durations, texts = reader.readAnnotations()
        annotations = list(zip(onsets, durations, texts))
    finally:
        reader.close()

    def check_annotations(source, annotations):
        if len(annotations) != expected["annotation_count"]:
            fail(f"{source}: {len(annotations)} annotations, expected {expected['annotation_count']}")
        for onset, duration, text in expected["annotations"]:
            found = [a for a in annotations if close(a[0], onset, 1e-5) and text in a[2]]
            if not found:
                fail(f"{source}: no annotation at {onset} s containing {text!r}")
            elif duration is not None and not close(found[0][1], duration, 1e-5):
                fail(f"{source}: annotation {text!r} lasts {found[0][1]} s, expected {duration}")

    check_annotations("pyedflib", annotations)

    # MNE: its own reader, a second opinion.
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    want_labels = [s["label"] for s in expected["signals"]]
    if raw.ch_names != want_labels:
        fail(f"mne channels {raw.ch_names}, expected {want_labels}")
    rates = {s["rate"] for s in expected["signals"]}
    if len(rates) == 1 and not close(raw.info["sfreq"], rates.pop()):
        fail(f"mne sampling rate {raw.info['sfreq']}")
    mne_annotations = [(a["onset"], a["duration"], a["description"]) for a in raw.annotations]
    check_annotations("mne", mne_annotations)
    data = raw.get_data(units=None)
    for index, signal in enumerate(expected["signals"]):
        if index >= len(raw.ch_names):
            break
        channel = data[index]
        # MNE scales non-voltage channels to SI by its own rules: compare the shape of the
        # signal (good samples relative to the first expected good one), not its unit.
        good = [(t, v) for t, v in signal["samples"] if v is not None]
        if len(good) < 2:
            continue
        t_ref, v_ref = good[0]
        scale = channel[int(round(t_ref * signal["rate"]))] / v_ref if v_ref else None
        if not scale:
            fail(f"mne {signal['label']}: cannot scale")
            continue
        for t, v in good[1:]:
            got = channel[int(round(t * signal["rate"]))] / scale
            if not close(got, v, 1e-3):
                fail(f"mne {signal['label']} at {t} s: {got}, expected {v}")

    if failures:
        print("EDF check FAILED:")
        for message in failures[:40]:
            print("  " + message)
        sys.exit(1)
    print(f"EDF+ OK: pyedflib {pyedflib.__version__} (strict) and mne {mne.__version__} read "
          f"{len(labels)} signals {labels} and {len(annotations)} annotations")


main()
