"""``aurora route`` and ``aurora catalogue``: the dispatcher's routing and catalogue from the command line,
run as real subprocesses (no engine needed)."""
from __future__ import annotations

import json
import subprocess
import sys

from .test_catalogue_programs_tiers import PROGRAM_GROUPS

AURORA = [sys.executable, "-m", "aurora_tui"]


def aurora(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*AURORA, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_route_json_fields():
    out = aurora("route", "restart brige api", "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert {"type", "confidence", "program", "tiers", "modules", "action", "target"} <= set(row)
    assert row["type"] == "debugging" and 0.9 <= row["confidence"] < 1.0
    assert row["program"] == {"id": 62, "name": "Automatic Repair"}
    assert row["action"] == "restart" and row["target"] == "bridge_api"
    assert [t["id"] for t in row["tiers"]] == [5, 184, 13] and all(t["name"] for t in row["tiers"])
    assert "aurora.restart" in row["modules"] and row["refusal"] is None
    assert out.stderr == ""


def test_route_reads_one_message_per_line_from_stdin():
    lines = ["status", "write a python function that parses durations", "kill -9 1", "", "why brige api"]
    out = aurora("route", "--json", stdin="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(lines)
    assert (rows[0]["action"], rows[0]["program"]["id"]) == ("status", 47)
    assert (rows[1]["type"], rows[1]["program"]["id"], rows[1]["action"]) == ("code_generation", 1, None)
    assert rows[2]["refusal"] and rows[2]["action"] is None and rows[2]["program"] is None
    assert rows[3]["type"] == "general_chat" and rows[3]["confidence"] < 0.5
    assert (rows[4]["action"], rows[4]["target"], rows[4]["program"]["id"]) == ("why", "bridge_api", 61)


def test_route_readable_line_and_names_from_a_config(tmp_path):
    out = aurora("route", "restart brige api")
    assert out.returncode == 0
    assert out.stdout.strip() == "debugging 99% · #62 Automatic Repair · tiers 5, 184, 13 · restart bridge_api"
    path = tmp_path / "fleet.toml"
    path.write_text(f'[[service]]\nname = "payments"\ncommand = ["{sys.executable}", "-c", "pass"]\n')
    row = json.loads(aurora("route", "restart paymnets", "--json", "--config", str(path)).stdout)
    assert (row["action"], row["target"]) == ("restart", "payments")
    row = json.loads(aurora("route", "restart brige api", "--json", "--config", str(path)).stdout)
    assert row["action"] == "restart" and row["target"] is None  # not a service of that fleet
    bad = aurora("route", "status", "--config", str(tmp_path / "missing.toml"))
    assert bad.returncode == 2 and "bad config" in bad.stderr


def test_catalogue_json():
    out = aurora("catalogue", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    programs, tiers, modules = data["programs"], data["tiers"], data["modules"]
    expected = [(g * 6 + i + 1, name, group) for g, (group, names) in enumerate(PROGRAM_GROUPS) for i, name in enumerate(names)]
    assert [(p["id"], p["name"], p["group"]) for p in programs] == expected
    assert {p["id"] for p in programs if p["mode"] == "live"} == set(range(43, 49)) | set(range(61, 67))
    assert len(tiers) == 188 and [t["id"] for t in tiers] == list(range(1, 189))
    assert {t["kind"] for t in tiers} == {"foundation", "grandmaster"} and all(t["name"] and t["domain"] for t in tiers)
    assert len(modules) >= 500
    ids = {m["id"] for m in modules}
    assert len(ids) == len(modules)
    for m in modules:
        assert set(m) == {"id", "name", "category", "version", "depends", "conflicts", "provides"}
        assert set(m["depends"]) <= ids and set(m["conflicts"]) <= ids, m["id"]
    by_id = {m["id"]: m for m in modules}
    for p in programs:
        assert p["modules"] and set(p["modules"]) <= ids and all(1 <= t <= 188 for t in p["tiers"])
        position = {m: i for i, m in enumerate(p["modules"])}
        for mid in p["modules"]:  # resolved: every dependency is there, and before its dependant
            assert all(dep in position and position[dep] < position[mid] for dep in by_id[mid]["depends"]), (p["id"], mid)
    assert data["counts"]["programs"] == 66 and data["counts"]["tiers"] == 188
    assert data["counts"]["modules"] == len(modules)


def test_catalogue_counts():
    out = aurora("catalogue")
    assert out.returncode == 0
    assert out.stdout.splitlines()[:2] == ["66 programs (12 live) in 11 groups", "188 tiers (13 foundation, 175 grandmaster)"]
    assert "modules:" in out.stdout and "29 issue patterns" in out.stdout
