"""The dispatcher's catalogue: 66 execution programs and 188 intelligence tiers, stored as TOML data.

The names, numbering and grouping are fixed; the tables below are the reference copy of them.
"""
from __future__ import annotations

import tomllib
from collections import Counter
from importlib.resources import files

import pytest

PROGRAM_GROUPS: list[tuple[str, list[str]]] = [
    ("Code Generation", ["Python", "JavaScript", "Go", "Rust", "C#", "Multi-Language"]),
    ("Debugging & Repair", ["Syntax Errors", "Runtime Errors", "Logic Errors", "Performance", "Security", "Integration"]),
    ("Architecture Design", ["System Design", "Microservices", "Databases", "APIs", "DevOps", "Cloud"]),
    ("Testing & QA", ["Unit Tests", "Integration Tests", "E2E Tests", "Performance Testing", "Security Testing", "CI/CD"]),
    ("Optimization", ["Performance", "Memory", "Parallelization", "Caching", "Refactoring", "Scaling"]),
    ("Documentation", ["Code Docs", "API Docs", "Architecture Docs", "Process Docs", "Training Docs", "Compliance"]),
    ("Explanation & Teaching", ["Concepts", "Code Walkthroughs", "Best Practices", "Patterns", "History", "Trends"]),
    ("Analysis", ["Code Analysis", "Complexity Analysis", "Security Analysis", "Dependency Analysis", "Metrics", "Profiling"]),
    ("Database Design", ["Schema Design", "Query Optimization", "Indexing", "Replication", "Backup", "Migration"]),
    ("AI/ML Integration", ["Model Integration", "Training", "Fine-tuning", "Inference", "Monitoring", "Evaluation"]),
    ("Self-Healing & Recovery", ["Error Detection", "Automatic Repair", "State Recovery", "Resource Cleanup", "Health Monitoring", "Rollback"]),
]

FOUNDATION_TIERS = [
    "Logical Deduction", "Pattern Recognition", "Abstraction & Generalization", "Contextual Analysis",
    "Error Recovery", "Optimization", "Parallel Processing", "Self-Correction", "Knowledge Consolidation",
    "Predictive Analysis", "Adaptive Learning", "Decision Making", "Autonomous Reasoning",
]

GRANDMASTER_DOMAINS: list[tuple[str, int, int]] = [
    ("Web Development", 14, 26),
    ("Mobile Development", 27, 39),
    ("Machine Learning & AI", 40, 52),
    ("Cloud & DevOps", 53, 65),
    ("Database Systems", 66, 78),
    ("Security & Compliance", 79, 91),
    ("System Design & Architecture", 92, 104),
    ("Testing & Quality Assurance", 105, 117),
    ("DevOps & CI/CD", 118, 130),
    ("Frontend Architecture", 131, 143),
    ("Backend Architecture", 144, 156),
    ("Data Engineering", 157, 169),
    ("DevEx & Tooling", 170, 182),
    ("Self-Healing & Autonomous Systems", 183, 188),
]

# A spot check of grandmaster names at domain edges and in the awkward spellings.
GRANDMASTER_NAMES_SAMPLE = {
    14: "Frontend Architecture & Design Systems",
    17: "Real-time Systems (WebSockets)",
    18: "Caching Strategies",
    26: "Progressive Web Apps",
    27: "iOS/Swift Development",
    39: "Device Integration (Camera, GPS, etc)",
    52: "Ethical AI & Bias Detection",
    67: "NoSQL Databases (Document, Key-Value, Time-Series)",
    72: "Real-time Streaming (Kafka, Kinesis)",
    104: "Trade-off Analysis (CAP Theorem, etc)",
    121: "Deployment Strategies (Blue-Green, Canary)",
    133: "Performance Optimization",
    182: "Developer Experience Metrics",
    183: "Automatic Error Detection",
    188: "System Evolution & Learning",
}

CONVERSATION_TYPES = {
    "code_generation", "debugging", "explanation", "architecture", "optimization",
    "testing", "general_chat", "question_answering", "analysis", "refactoring",
}

LIVE_PROGRAMS = set(range(43, 49)) | set(range(61, 67))

PROGRAM_LISTS = {"keywords": (6, 15), "questions": (3, 5), "checklist": (4, 7), "pitfalls": (2, 4)}
TIER_LISTS = {"keywords": (4, 10), "questions": (2, 4), "checklist": (3, 6), "pitfalls": (2, 3)}


def _load(name: str) -> dict:
    return tomllib.loads(files("aurora_tui.catalogue").joinpath(name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def programs() -> list[dict]:
    return _load("programs.toml")["program"]


@pytest.fixture(scope="module")
def tiers() -> list[dict]:
    return _load("tiers.toml")["tier"]


def _expected_programs() -> list[tuple[int, str, str]]:
    rows = []
    for g, (group, names) in enumerate(PROGRAM_GROUPS):
        for i, name in enumerate(names):
            rows.append((g * 6 + i + 1, name, group))
    return rows


def _expected_tiers() -> list[tuple[int, str, str]]:
    rows = [(i + 1, "foundation", "Foundation") for i in range(len(FOUNDATION_TIERS))]
    for domain, first, last in GRANDMASTER_DOMAINS:
        rows += [(i, "grandmaster", domain) for i in range(first, last + 1)]
    return rows


def test_program_ids_names_and_groups(programs):
    assert len(PROGRAM_GROUPS) == 11 and all(len(names) == 6 for _, names in PROGRAM_GROUPS)
    assert len(programs) == 66
    assert [(p["id"], p["name"], p["group"]) for p in programs] == _expected_programs()


def test_tier_ids_kinds_and_domains(tiers):
    assert len(tiers) == 188
    assert [(t["id"], t["kind"], t["domain"]) for t in tiers] == _expected_tiers()
    kinds = Counter(t["kind"] for t in tiers)
    assert kinds == {"foundation": 13, "grandmaster": 175}
    assert [t["name"] for t in tiers[:13]] == FOUNDATION_TIERS
    by_id = {t["id"]: t for t in tiers}
    for tier_id, name in GRANDMASTER_NAMES_SAMPLE.items():
        assert by_id[tier_id]["name"] == name
    assert len({t["name"] for t in tiers}) == 188


def _check_fields(entry: dict, scalars: tuple[str, ...], lists: dict[str, tuple[int, int]]) -> None:
    label = f"{entry.get('id')} {entry.get('name')}"
    for key in scalars:
        assert isinstance(entry.get(key), str) and entry[key].strip(), f"{label}: {key}"
    for key, (low, high) in lists.items():
        value = entry.get(key)
        assert isinstance(value, list), f"{label}: {key} is not a list"
        assert low <= len(value) <= high, f"{label}: {key} has {len(value)} items, want {low}-{high}"
        for item in value:
            assert isinstance(item, str) and item.strip(), f"{label}: empty item in {key}"
        assert len(set(value)) == len(value), f"{label}: repeated item in {key}"


def test_program_fields(programs):
    allowed = {"id", "name", "group", "mode", "conversation_types", "tiers", "summary", *PROGRAM_LISTS}
    for p in programs:
        assert set(p) == allowed, p["id"]
        _check_fields(p, ("name", "group", "mode", "summary"), PROGRAM_LISTS)
        assert all(k == k.lower() for k in p["keywords"]), p["id"]
        assert 1 <= len(p["conversation_types"]) and len(set(p["conversation_types"])) == len(p["conversation_types"])
        assert 1 <= len(p["tiers"]) <= 3 and len(set(p["tiers"])) == len(p["tiers"]), p["id"]


def test_tier_fields(tiers):
    allowed = {"id", "name", "kind", "domain", "summary", *TIER_LISTS}
    for t in tiers:
        assert set(t) == allowed, t["id"]
        _check_fields(t, ("name", "kind", "domain", "summary"), TIER_LISTS)
        assert all(k == k.lower() for k in t["keywords"]), t["id"]


def test_conversation_types_are_known_and_all_covered(programs):
    used = set()
    for p in programs:
        assert set(p["conversation_types"]) <= CONVERSATION_TYPES, p["id"]
        used |= set(p["conversation_types"])
    assert used == CONVERSATION_TYPES


def test_tier_references_exist(programs):
    for p in programs:
        assert all(isinstance(t, int) and 1 <= t <= 188 for t in p["tiers"]), p["id"]


def test_live_programs(programs):
    assert {p["id"] for p in programs if p["mode"] == "live"} == LIVE_PROGRAMS
    assert {p["mode"] for p in programs} == {"live", "catalogue"}


@pytest.mark.parametrize("field", ["summary", "checklist", "questions", "pitfalls"])
def test_no_copy_paste_between_entries(programs, tiers, field):
    seen: dict[str, str] = {}
    for kind, entries in (("program", programs), ("tier", tiers)):
        for e in entries:
            items = [e[field]] if field == "summary" else e[field]
            for item in items:
                key = " ".join(item.lower().split())
                owner = f"{kind} {e['id']}"
                assert key not in seen, f"{field} repeated in {seen[key]} and {owner}: {item!r}"
                seen[key] = owner
