"""Parses vitalwatch's FHIR export with the FHIR R4 (4.0.1) models of fhir.resources 6.4.0 and
checks its content against what the test recorded.

usage: check_fhir.py BUNDLE.json EXPECTED.json

EXPECTED.json (written by tests/export.rs from its own description of the session):
  {"session_id": "...", "devices": ["cuff1", "ox1"],
   "counts": {"2708-6": n, "8867-4": n, "85354-9": n},   # vital-signs Observations per code
   "spo2": [[time or period start, value or null], ...],  # every SpO2 Observation, in order
   "bp": [[time or period start, systolic, diastolic, mean], ...],
   "alarms": [{"code", "severity", "start", "end", "acknowledged_by", "acknowledged_at"}],
   "events": {"phase": n, "note": n, "link": n, "gap": n},
   "interval": null or seconds}
Exits 1 with every difference found.
"""

import json
import re
import sys
from datetime import datetime

import fhir.resources
from fhir.resources import construct_fhir_element
from fhir.resources.bundle import Bundle

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SESSION = "urn:vitalwatch:session-id"
UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# clinical.md's export table: primary LOINC code -> (LOINC codes, MDC codes allowed, UCUM).
TABLE = {
    "2708-6": ({"2708-6", "59408-5"}, {"150456"}, "%"),
    "8867-4": ({"8867-4"}, {"149530", "149546"}, "/min"),
    "9279-1": ({"9279-1"}, {"151562"}, "/min"),
}
PANEL = ("85354-9", "150020")
COMPONENTS = {
    "8480-6": ("150021", "systolic"),
    "8462-4": ("150022", "diastolic"),
    "8478-0": ("150023", "mean"),
}

failures = []


def fail(message):
    failures.append(message)


def codes(concept, system):
    return {c["code"] for c in concept.get("coding", []) if c.get("system") == system}


def when(resource):
    if "effectiveDateTime" in resource:
        return resource["effectiveDateTime"]
    return resource.get("effectivePeriod", {}).get("start")


def same_time(a, b):
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))
    return a is not None and b is not None and parse(a) == parse(b)


def main():
    bundle_path, expected_path = sys.argv[1:3]
    with open(bundle_path, encoding="utf-8") as f:
        data = json.load(f)
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)

    if fhir.resources.__fhir_version__ != "4.0.1":
        fail(f"fhir.resources models are FHIR {fhir.resources.__fhir_version__}, not R4 4.0.1")
    # The strict part: the R4 models refuse unknown fields, wrong types, missing required ones.
    bundle = Bundle.parse_obj(data)
    if bundle.type != "collection":
        fail(f"bundle type {bundle.type}, expected collection")
    urls = set()
    by_type = {}
    for index, entry in enumerate(data["entry"]):
        url = entry.get("fullUrl", "")
        if not UUID.match(url):
            fail(f"entry {index}: fullUrl {url!r} is not a urn:uuid")
        if url in urls:
            fail(f"entry {index}: fullUrl {url} is not unique")
        urls.add(url)
        resource = entry["resource"]
        # Each resource on its own, with its own R4 model.
        construct_fhir_element(resource["resourceType"], resource)
        by_type.setdefault(resource["resourceType"], []).append(resource)
    if "Patient" in by_type:
        fail("the bundle holds a Patient resource: the session id must be the only reference")

    def check_refs(node, where):
        if isinstance(node, dict):
            if "reference" in node and node["reference"] not in urls:
                fail(f"{where}: reference {node['reference']} is not in the bundle")
            for key, value in node.items():
                check_refs(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                check_refs(value, f"{where}[{i}]")

    check_refs(data, "Bundle")

    subject = {"identifier": {"system": SESSION, "value": expected["session_id"]}}

    devices = sorted(d["identifier"][0]["value"] for d in by_type.get("Device", []))
    if devices != sorted(expected["devices"]):
        fail(f"devices {devices}, expected {expected['devices']}")

    counts = {}
    spo2 = []
    bp = []
    events = {}
    for obs in by_type.get("Observation", []):
        categories = {c["code"] for cat in obs.get("category", []) for c in cat.get("coding", [])
                      if c.get("system") == CATEGORY}
        if "vital-signs" not in categories:
            code = next(iter(codes(obs["code"], "urn:vitalwatch:session-event")), None)
            if code is None:
                fail(f"an Observation that is neither vital signs nor a session event: {obs['code']}")
            events[code] = events.get(code, 0) + 1
            if obs.get("subject") != subject:
                fail(f"session event subject {obs.get('subject')}, expected {subject}")
            continue
        if obs.get("subject") != subject:
            fail(f"subject {obs.get('subject')}, expected {subject}")
        if obs.get("status") != "final":
            fail(f"status {obs.get('status')}")
        if expected["interval"] is None and "effectiveDateTime" not in obs:
            fail("a per-reading Observation without effectiveDateTime")
        if expected["interval"] is not None:
            period = obs.get("effectivePeriod")
            if not period:
                fail("a summary Observation without effectivePeriod")
            else:
                start = datetime.fromisoformat(period["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(period["end"].replace("Z", "+00:00"))
                if (end - start).total_seconds() != expected["interval"]:
                    fail(f"summary period {period} is not {expected['interval']} s")
        loinc = codes(obs["code"], LOINC)
        mdc = codes(obs["code"], MDC)
        if PANEL[0] in loinc:
            counts[PANEL[0]] = counts.get(PANEL[0], 0) + 1
            if loinc != {PANEL[0]} or mdc != {PANEL[1]}:
                fail(f"BP panel coded {loinc} {mdc}")
            if "valueQuantity" in obs:
                fail("a BP panel with a value of its own")
            values = {}
            for component in obs.get("component", []):
                c_loinc = codes(component["code"], LOINC)
                c_mdc = codes(component["code"], MDC)
                if len(c_loinc) != 1 or next(iter(c_loinc)) not in COMPONENTS:
                    fail(f"BP component coded {c_loinc}")
                    continue
                code = next(iter(c_loinc))
                want_mdc, name = COMPONENTS[code]
                if c_mdc != {want_mdc}:
                    fail(f"BP component {code} has MDC {c_mdc}, expected {want_mdc}")
                quantity = component.get("valueQuantity")
                if quantity:
                    if quantity.get("system") != UCUM or quantity.get("code") != "mm[Hg]":
                        fail(f"BP component unit {quantity}")
                    values[name] = quantity["value"]
            if "systolic" not in values or "diastolic" not in values:
                fail(f"a BP panel without systolic and diastolic: {obs.get('component')}")
            bp.append([when(obs), values.get("systolic"), values.get("diastolic"), values.get("mean")])
            continue
        primary = next((code for code in TABLE if code in loinc), None)
        if primary is None:
            fail(f"a vital-signs Observation coded {loinc}: not in the export table")
            continue
        want_loinc, want_mdc, ucum = TABLE[primary]
        if loinc != want_loinc:
            fail(f"{primary}: LOINC codes {loinc}, expected {want_loinc}")
        if len(mdc) != 1 or not mdc <= want_mdc:
            fail(f"{primary}: MDC codes {mdc}, expected one of {want_mdc}")
        counts[primary] = counts.get(primary, 0) + 1
        quantity = obs.get("valueQuantity")
        if quantity is not None:
            if quantity.get("system") != UCUM or quantity.get("code") != ucum:
                fail(f"{primary}: unit {quantity}, expected UCUM {ucum}")
        elif "dataAbsentReason" not in obs:
            fail(f"{primary}: neither a value nor a dataAbsentReason")
        if primary == "2708-6":
            spo2.append([when(obs), quantity["value"] if quantity else None])

    for code, count in expected["counts"].items():
        if counts.get(code, 0) != count:
            fail(f"{counts.get(code, 0)} Observations coded {code}, expected {count}")
    for code in counts:
        if code not in expected["counts"]:
            fail(f"unexpected Observations coded {code}: {counts[code]}")

    if len(spo2) != len(expected["spo2"]):
        fail(f"{len(spo2)} SpO2 Observations, expected {len(expected['spo2'])}")
    for (t, value), (want_t, want_value) in zip(spo2, expected["spo2"]):
        if not same_time(t, want_t) or value != want_value:
            fail(f"SpO2 {value} at {t}, expected {want_value} at {want_t}")
            break
    if len(bp) != len(expected["bp"]):
        fail(f"{len(bp)} BP panels, expected {len(expected['bp'])}")
    for got, want in zip(bp, expected["bp"]):
        if not same_time(got[0], want[0]) or got[1:] != want[1:]:
            fail(f"BP panel {got}, expected {want}")

    issues = sorted(by_type.get("DetectedIssue", []), key=lambda d: d["identifiedPeriod"]["start"])
    want_alarms = sorted(expected["alarms"], key=lambda a: a["start"])
    if len(issues) != len(want_alarms):
        fail(f"{len(issues)} DetectedIssues, expected {len(want_alarms)}")
    for issue, want in zip(issues, want_alarms):
        code = next(iter(codes(issue["code"], "urn:vitalwatch:alarm-source")), None)
        period = issue["identifiedPeriod"]
        if code != want["code"] or issue.get("severity") != want["severity"]:
            fail(f"DetectedIssue {code}/{issue.get('severity')}, expected {want['code']}/{want['severity']}")
        if not same_time(period.get("start"), want["start"]) or not same_time(period.get("end"), want["end"]):
            fail(f"DetectedIssue {code} period {period}, expected {want['start']}..{want['end']}")
        if issue.get("patient") != subject:
            fail(f"DetectedIssue patient {issue.get('patient')}, expected {subject}")
        acks = [m for m in issue.get("mitigation", [])
                if "acknowledged" in codes(m["action"], "urn:vitalwatch:alarm-change")]
        if want.get("acknowledged_by"):
            if not acks or acks[0].get("author", {}).get("display") != want["acknowledged_by"] \
                    or not same_time(acks[0].get("date"), want["acknowledged_at"]):
                fail(f"DetectedIssue {code}: acknowledgement {acks}, expected by "
                     f"{want['acknowledged_by']} at {want['acknowledged_at']}")
        elif acks:
            fail(f"DetectedIssue {code}: unexpected acknowledgement {acks}")

    for code, count in expected["events"].items():
        if events.get(code, 0) != count:
            fail(f"{events.get(code, 0)} session-event Observations coded {code}, expected {count}")

    if failures:
        print("FHIR check FAILED:")
        for message in failures[:40]:
            print("  " + message)
        sys.exit(1)
    total = sum(counts.values())
    print(f"FHIR OK: R4 {fhir.resources.__fhir_version__} bundle of {len(data['entry'])} entries "
          f"({total} vital-signs Observations {counts}, {len(issues)} DetectedIssues, "
          f"events {events}) parsed by fhir.resources {fhir.resources.__version__}")


main()
