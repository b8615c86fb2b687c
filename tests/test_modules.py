"""The module catalogue and the module registry. Pure: no processes, no event loop, no console."""
from __future__ import annotations

import re
import sys
import tomllib
from collections import Counter
from importlib.resources import files

import pytest

from aurora_tui.core import modules as modules_mod
from aurora_tui.core.modules import CATEGORIES, ID_RE, Module, ModuleError, ModuleRegistry

MINIMUMS = {
    "language": 60,
    "framework": 110,
    "ai_ml": 80,
    "devops": 80,
    "security": 55,
    "testing": 60,
    "utility": 75,
}
PROGRAM_IDS = [str(n) for n in range(1, 67)]


@pytest.fixture(scope="module")
def catalogue() -> ModuleRegistry:
    """The packaged catalogue, for read-only checks."""
    return ModuleRegistry.load()


@pytest.fixture
def registry() -> ModuleRegistry:
    """A fresh registry with nothing active, for activation tests."""
    return ModuleRegistry.load()


def raw_entries() -> list[tuple[str, dict]]:
    """Every [[module]] table straight from the TOML files, duplicates included."""
    directory = files("aurora_tui.catalogue") / "modules"
    out = []
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".toml"):
            for entry in tomllib.loads(path.read_text(encoding="utf-8"))["module"]:
                out.append((path.name, entry))
    return out


def mod(id: str, depends: tuple[str, ...] = (), conflicts: tuple[str, ...] = (), *, category: str = "utility",
        version: str = "1.0.0") -> Module:
    return Module(id=id, name=id.title(), category=category, version=version, depends=depends,
                  conflicts=conflicts, provides=("thing",), description=f"The {id} module.")


# -- the catalogue -----------------------------------------------------------------------------------


def test_one_file_per_category_and_nothing_else() -> None:
    names = {p.name for p in (files("aurora_tui.catalogue") / "modules").iterdir() if p.name.endswith(".toml")}
    assert names == {f"{c}.toml" for c in CATEGORIES}


def test_counts_per_category_and_total(catalogue: ModuleRegistry) -> None:
    counts = catalogue.categories()
    assert list(counts) == list(CATEGORIES)
    for category, minimum in MINIMUMS.items():
        assert counts[category] >= minimum, f"{category}: {counts[category]} < {minimum}"
    assert len(catalogue) == sum(counts.values()) >= 520


def test_catalogue_validates_clean(catalogue: ModuleRegistry) -> None:
    assert catalogue.validate() == []


def test_ids_unique_dotted_lowercase_and_in_the_right_file(catalogue: ModuleRegistry) -> None:
    entries = raw_entries()
    ids = [entry["id"] for _, entry in entries]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert len(ids) == len(catalogue)
    for file_name, entry in entries:
        assert ID_RE.match(entry["id"]), entry["id"]
        assert entry["id"] == entry["id"].lower()
        assert entry["category"] == file_name.removesuffix(".toml"), entry["id"]
        assert set(entry) == {"id", "name", "category", "version", "depends", "conflicts", "provides", "description"}


def test_no_filler(catalogue: ModuleRegistry) -> None:
    mods = list(catalogue)
    descriptions = Counter(m.description.strip().lower() for m in mods)
    assert [d for d, n in descriptions.items() if n > 1] == []
    names = Counter(m.name.strip().lower() for m in mods)
    assert [n for n, c in names.items() if c > 1] == []
    for m in mods:
        # No "utility.helper-17", "x.17" or numbered variants of one another.
        assert not re.search(r"\.\d+$", m.id), m.id
        assert not re.search(r"[-_]\d+$", m.id), m.id
        assert not any(part.isdigit() for part in m.id.split(".")), m.id
        assert len(m.description) >= 30, m.id
        assert not re.search(r"\b(helper|module|tool|item)[- ]?\d+\b", m.name.lower()), m.name
    shapes = Counter(re.sub(r"\d+", "#", m.id) for m in mods)
    assert [s for s, n in shapes.items() if n > 1] == []


def test_fields_are_well_formed(catalogue: ModuleRegistry) -> None:
    versions = set()
    for m in catalogue:
        assert modules_mod.SEMVER_RE.match(m.version), (m.id, m.version)
        assert 1 <= len(m.provides) <= 4, m.id
        assert m.name.strip() and m.description.strip(), m.id
        assert "\n" not in m.description, m.id
        versions.add(m.version)
    assert {"1.0.0", "1.1.0", "2.0.0"} <= versions
    assert len(versions) >= 10


def test_conflicts_are_rare_and_symmetric(catalogue: ModuleRegistry) -> None:
    declared = [(m.id, other) for m in catalogue for other in m.conflicts]
    assert 0 < len(declared) <= 30
    for a, b in declared:
        assert a in catalogue.get(b).conflicts


def test_known_real_modules_are_present(catalogue: ModuleRegistry) -> None:
    for module_id in [
        "python.asyncio", "python.typing", "react.hooks", "vue.composition-api", "django.orm", "k8s.hpa",
        "k8s.pdb", "postgres.replication", "postgres.explain", "redis.streams", "prometheus.alertmanager",
        "otel.tracing", "oauth2.pkce", "jwt.validation", "pytest.fixtures", "hypothesis.stateful",
        "locust.load", "chaos.toxiproxy", "regex.re2", "zstd.compression",
        # The operations side.
        "systemd.units", "supervisord.programs", "posix.signals", "posix.process-groups", "psutil.process",
        "cgroups.v2", "journald.logging", "logrotate.rotation", "net.socket-inspection", "lsof.open-files",
        "health.http-checks", "resilience.circuit-breaker", "resilience.retry-backoff",
        "resilience.token-bucket", "sqlite.wal",
    ]:
        assert module_id in catalogue, module_id


def test_aurora_self_healing_techniques_are_modules(catalogue: ModuleRegistry) -> None:
    for name in ["restart", "free-port", "reap-zombies", "rotate-logs", "rollback", "backoff", "guardians", "learning"]:
        module = catalogue.get(f"aurora.{name}")
        assert module.category in {"utility", "devops"}


def test_framework_modules_rest_on_a_language(catalogue: ModuleRegistry) -> None:
    for m in catalogue.in_category("framework"):
        closure = catalogue.resolve(m.id)
        assert any(catalogue.get(i).category == "language" for i in closure), m.id
    assert catalogue.resolve("django.orm") == ["python.core", "django.core", "django.orm"]


def test_every_module_resolves_dependencies_first(catalogue: ModuleRegistry) -> None:
    for m in catalogue:
        order = catalogue.resolve(m.id)
        assert order[-1] == m.id
        position = {module_id: i for i, module_id in enumerate(order)}
        for module_id in order:
            for dep in catalogue.get(module_id).depends:
                assert position[dep] < position[module_id], (m.id, dep, module_id)
        assert catalogue.conflicts_in(order) == [], m.id


# -- programs ----------------------------------------------------------------------------------------


def test_every_program_has_two_to_six_modules(catalogue: ModuleRegistry) -> None:
    programs = catalogue.programs()
    assert sorted(programs, key=int) == PROGRAM_IDS
    for program_id, ids in programs.items():
        assert 2 <= len(ids) <= 6, program_id
        assert len(set(ids)) == len(ids), program_id


def test_every_program_resolves_without_conflicts(catalogue: ModuleRegistry) -> None:
    for program_id in PROGRAM_IDS:
        resolved = catalogue.for_program(program_id)
        assert set(catalogue.programs()[program_id]) <= set(resolved)
        assert len(resolved) == len(set(resolved))
        seen: set[str] = set()
        for module_id in resolved:
            assert set(catalogue.get(module_id).depends) <= seen, (program_id, module_id)
            seen.add(module_id)
        assert catalogue.conflicts_in(resolved) == [], program_id
    assert catalogue.for_program(1) == catalogue.for_program("1")


def test_every_program_activates_on_a_fresh_registry() -> None:
    for program_id in PROGRAM_IDS:
        registry = ModuleRegistry.load()
        added = registry.activate(registry.programs()[program_id])
        assert added == registry.for_program(program_id) == registry.active()


def test_self_healing_programs_use_aurora_modules(catalogue: ModuleRegistry) -> None:
    for program_id in ["61", "62", "63", "64", "65", "66"]:
        assert any(i.startswith("aurora.") for i in catalogue.programs()[program_id]), program_id


def test_unknown_program_is_refused(catalogue: ModuleRegistry) -> None:
    with pytest.raises(ModuleError, match="67"):
        catalogue.for_program(67)


# -- resolution --------------------------------------------------------------------------------------


def test_resolution_is_deterministic_deduplicated_and_ordered(catalogue: ModuleRegistry) -> None:
    order = catalogue.resolve(["fastapi.openapi", "fastapi.dependency-injection", "python.core"])
    assert order == catalogue.resolve(["fastapi.openapi", "fastapi.dependency-injection", "python.core"])
    assert len(order) == len(set(order))
    assert order[0] == "python.core"
    assert order.index("fastapi.core") < order.index("fastapi.openapi") < order.index("fastapi.dependency-injection")
    assert order.index("json.schema") < order.index("openapi.spec") < order.index("fastapi.openapi")


def test_a_bare_string_is_one_id(catalogue: ModuleRegistry) -> None:
    assert catalogue.resolve("python.asyncio") == ["python.core", "python.asyncio"]


def test_unknown_id_is_named_with_a_suggestion(catalogue: ModuleRegistry) -> None:
    with pytest.raises(ModuleError, match=r"unknown module 'python.asyncoi'.*did you mean 'python.asyncio'"):
        catalogue.resolve(["python.asyncoi"])
    with pytest.raises(ModuleError, match="nope.nothing"):
        catalogue.get("nope.nothing")


def test_conflicts_in_reports_pairs(catalogue: ModuleRegistry) -> None:
    assert catalogue.conflicts_in(["python.core", "js.core"]) == []
    assert catalogue.conflicts_in(["js.esm", "python.core", "js.commonjs"]) == [("js.esm", "js.commonjs")]
    assert catalogue.conflicts_in(["sqlite.rollback-journal", "sqlite.wal", "k8s.hpa", "keda.scaledobject"]) == [
        ("sqlite.rollback-journal", "sqlite.wal"),
        ("k8s.hpa", "keda.scaledobject"),
    ]


# -- activation --------------------------------------------------------------------------------------


def test_activate_returns_what_became_active_in_order(registry: ModuleRegistry) -> None:
    assert registry.active() == []
    assert registry.activate(["django.orm"]) == ["python.core", "django.core", "django.orm"]
    assert registry.activate(["django.migrations", "python.asyncio"]) == ["django.migrations", "python.asyncio"]
    assert registry.activate("django.orm") == []
    assert registry.active() == ["python.core", "django.core", "django.orm", "django.migrations", "python.asyncio"]
    assert registry.is_active("django.core") and not registry.is_active("flask.core")


def test_conflict_with_an_active_module_is_refused_naming_both(registry: ModuleRegistry) -> None:
    registry.activate(["js.esm"])
    with pytest.raises(ModuleError) as caught:
        registry.activate(["js.commonjs"])
    assert "js.commonjs" in str(caught.value) and "js.esm" in str(caught.value)
    assert registry.active() == ["js.core", "js.esm"]


def test_conflict_reached_through_dependencies_is_refused(registry: ModuleRegistry) -> None:
    registry.activate(["aurora.state-store"])  # depends on sqlite.wal
    before = registry.active()
    with pytest.raises(ModuleError) as caught:
        registry.activate(["python.core", "sqlite.rollback-journal"])
    message = str(caught.value)
    assert "sqlite.rollback-journal" in message and "sqlite.wal" in message
    assert registry.active() == before  # nothing partially activated


def test_conflict_within_the_requested_set_is_refused_naming_both(registry: ModuleRegistry) -> None:
    with pytest.raises(ModuleError) as caught:
        registry.activate(["tokio.multi-thread", "tokio.current-thread"])
    assert "tokio.multi-thread" in str(caught.value) and "tokio.current-thread" in str(caught.value)
    assert registry.active() == []


def test_deactivating_a_dependency_of_an_active_module_is_refused(registry: ModuleRegistry) -> None:
    registry.activate(["django.orm"])
    with pytest.raises(ModuleError) as caught:
        registry.deactivate("django.core")
    assert "django.core" in str(caught.value) and "django.orm" in str(caught.value)
    assert registry.active() == ["python.core", "django.core", "django.orm"]
    assert registry.deactivate("django.orm") is True
    assert registry.deactivate("django.core") is True
    assert registry.deactivate("django.core") is False  # no longer active
    assert registry.active() == ["python.core"]
    with pytest.raises(ModuleError):
        registry.deactivate("no.such-module")


def test_deactivation_frees_a_conflict(registry: ModuleRegistry) -> None:
    registry.activate(["k8s.hpa"])
    with pytest.raises(ModuleError):
        registry.activate(["keda.scaledobject"])
    registry.deactivate("k8s.hpa")
    assert registry.activate(["keda.scaledobject"]) == ["keda.scaledobject"]


def test_each_load_has_its_own_active_set() -> None:
    first, second = ModuleRegistry.load(), ModuleRegistry.load()
    first.activate(["python.core"])
    assert second.active() == []


# -- hand-built registries ---------------------------------------------------------------------------


def test_cycle_is_detected_with_its_path() -> None:
    registry = ModuleRegistry([mod("a.one", ("b.two",)), mod("b.two", ("c.three",)), mod("c.three", ("a.one",)),
                               mod("d.four", ("a.one",))])
    problems = registry.validate()
    assert "dependency cycle: a.one -> b.two -> c.three -> a.one" in problems
    assert sum("cycle" in p for p in problems) == 1  # reported once, not once per member
    with pytest.raises(ModuleError, match=r"dependency cycle: a\.one -> b\.two -> c\.three -> a\.one"):
        registry.resolve(["d.four"])
    with pytest.raises(ModuleError, match="cycle"):
        registry.activate(["b.two"])
    assert registry.active() == []


def test_self_dependency_is_a_cycle() -> None:
    registry = ModuleRegistry([mod("a.one", ("a.one",))])
    assert any("depends on itself" in p for p in registry.validate())
    with pytest.raises(ModuleError, match=r"a\.one -> a\.one"):
        registry.resolve("a.one")


def test_missing_dependency_is_named() -> None:
    registry = ModuleRegistry([mod("a.one", ("b.two",)), mod("b.two", ("c.gone",))])
    assert registry.validate() == ["b.two: depends on unknown module 'c.gone'"]
    with pytest.raises(ModuleError, match=r"unknown module 'c\.gone' \(required by 'b\.two'\)"):
        registry.resolve(["a.one"])


def test_asymmetric_conflict_is_reported() -> None:
    registry = ModuleRegistry([mod("a.one", conflicts=("b.two",)), mod("b.two")])
    problems = registry.validate()
    assert any("a.one" in p and "b.two" in p and "symmetric" in p for p in problems)
    # Declared on one side only, it still counts when activating.
    registry.activate("b.two")
    with pytest.raises(ModuleError, match="b.two"):
        registry.activate("a.one")


def test_duplicates_category_mismatch_semver_and_id_shape_are_reported() -> None:
    registry = ModuleRegistry(
        [mod("a.one"), mod("a.one"), mod("b.two", category="testing"), mod("c.three", version="1.0"),
         mod("Bad_Id"), mod("d.four", category="misc")],
        sources=["utility.toml", "testing.toml", "utility.toml", "utility.toml", "utility.toml", "utility.toml"],
    )
    problems = registry.validate()
    assert "duplicate module id 'a.one' (utility.toml and testing.toml)" in problems
    assert "b.two: category 'testing' but it is listed in utility.toml" in problems
    assert any(p.startswith("c.three: version '1.0'") for p in problems)
    assert any("'Bad_Id'" in p and "lowercase" in p for p in problems)
    assert any(p.startswith("d.four: unknown category 'misc'") for p in problems)


def test_module_whose_dependencies_conflict_is_reported() -> None:
    registry = ModuleRegistry([mod("a.one", conflicts=("b.two",)), mod("b.two", conflicts=("a.one",)),
                               mod("c.three", ("a.one", "b.two"))])
    assert registry.validate() == ["c.three: cannot be activated: its dependencies 'a.one' and 'b.two' conflict"]


def test_program_problems_are_reported() -> None:
    registry = ModuleRegistry(
        [mod("a.one", conflicts=("b.two",)), mod("b.two", conflicts=("a.one",)), mod("c.three")],
        {"1": ["a.one", "b.two"], "2": ["c.three", "z.gone"], "3": ["c.three"]},
    )
    problems = registry.validate()
    assert "program 1: modules 'a.one' and 'b.two' conflict" in problems
    assert any(p.startswith("program 2: unknown module 'z.gone'") for p in problems)
    assert registry.for_program(3) == ["c.three"]
    with pytest.raises(ModuleError, match="program 2"):
        registry.for_program(2)


# -- loading -----------------------------------------------------------------------------------------


def test_parse_is_cached_per_process() -> None:
    # How long a cold load and a cached load take is measured by the route benchmark
    # (catalogue_cold_load_ms, catalogue_cached_load_us), not here.
    modules_mod._parse_catalogue.cache_clear()
    cold = ModuleRegistry.load()
    assert modules_mod._parse_catalogue.cache_info().misses == 1
    for _ in range(10):
        assert ModuleRegistry.load()._modules == cold._modules
    info = modules_mod._parse_catalogue.cache_info()
    assert (info.misses, info.hits) == (1, 10), "a load after the first must not parse the catalogue again"
    assert modules_mod._parse_catalogue("aurora_tui.catalogue") is modules_mod._parse_catalogue("aurora_tui.catalogue")


def _fake_catalogue(tmp_path, monkeypatch, name: str, files_: dict[str, str]) -> str:
    package = tmp_path / name
    (package / "modules").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for relative, text in files_.items():
        (package / relative).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


ENTRY = """
[[module]]
id = "{id}"
name = "{id} name"
category = "{category}"
version = "1.0.0"
depends = []
conflicts = []
provides = ["x"]
description = "The {id} description."
"""


def test_loader_reads_any_package_and_reports_file_problems(tmp_path, monkeypatch) -> None:
    name = _fake_catalogue(tmp_path, monkeypatch, "aurora_fake_catalogue_ok", {
        "modules/utility.toml": ENTRY.format(id="a.one", category="utility") + ENTRY.format(id="b.two", category="devops"),
        "modules/testing.toml": ENTRY.format(id="a.one", category="testing"),
        "program_modules.toml": '"1" = ["a.one"]\n',
    })
    registry = ModuleRegistry.load(name)
    assert registry.ids() == ["a.one", "b.two"]  # testing.toml is read before utility.toml
    assert registry.programs() == {"1": ("a.one",)}
    problems = registry.validate()
    assert "duplicate module id 'a.one' (testing.toml and utility.toml)" in problems
    assert "b.two: category 'devops' but it is listed in utility.toml" in problems


def test_loader_refuses_malformed_entries(tmp_path, monkeypatch) -> None:
    name = _fake_catalogue(tmp_path, monkeypatch, "aurora_fake_catalogue_bad", {
        "modules/utility.toml": ENTRY.format(id="a.one", category="utility").replace("provides", "provide"),
    })
    with pytest.raises(ModuleError, match=r"utility\.toml: module\[0\] \(a\.one\): unknown key 'provide'; did you mean 'provides'"):
        ModuleRegistry.load(name)
