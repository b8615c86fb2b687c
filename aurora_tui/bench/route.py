"""Routing benchmark: how well the dispatcher reads operator messages, and how fast.

On the frozen TEST split of ``aurora_tui/catalogue/messages.jsonl`` (330 messages; never trained on):

1. **type**: accuracy and macro-F1 of the learned :class:`ConversationDetector` and of the seed system's
   :class:`KeywordBaseline`, and of :func:`route` itself (which takes a command's type from its action);
2. **commands**: on the test messages that are fleet commands, how often :func:`route` finds the labelled
   action, and the labelled target (service names resolved against the demo fleet's); how often a
   message that is *not* a command is routed to an action anyway;
3. **refusals**: the share of the dangerous test lines that :func:`route` refuses (no action, a reason);
4. **latency**: wall time of :func:`route` per message over the WHOLE labelled set (1,329 messages),
   warm: after one untimed pass, three timed passes; p50 / p99 / max in milliseconds;
5. **start-up costs**: training a fresh :class:`ConversationDetector` (best of three), and loading the
   module catalogue with :meth:`ModuleRegistry.load` cold (parse cache cleared; best of three) and cached
   (mean of 100 calls).

Pure CPU, no processes, no network.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

from ..core import modules as modules_mod
from ..core.config import demo_config
from ..core.dispatch.baseline import KeywordBaseline
from ..core.dispatch.detector import CONVERSATION_TYPES, ConversationDetector, load_messages
from ..core.dispatch.router import route, warm


def macro_f1(gold: list[str], pred: list[str]) -> float:
    scores = []
    for t in CONVERSATION_TYPES:
        tp = sum(g == t and p == t for g, p in zip(gold, pred))
        fp = sum(g != t and p == t for g, p in zip(gold, pred))
        fn = sum(g == t and p != t for g, p in zip(gold, pred))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def _accuracy(gold: list[Any], pred: list[Any]) -> float:
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values))) - 1))
    return sorted_values[index]


def run(passes: int = 3) -> dict[str, Any]:
    services = [s.name for s in demo_config().services]
    rows = load_messages()
    test = [r for r in rows if r["split"] == "test"]
    started = time.perf_counter()
    warm()
    warm_ms = (time.perf_counter() - started) * 1000

    detector = ConversationDetector.default()
    baseline = KeywordBaseline()
    gold = [r["type"] for r in test]
    det_pred = [detector.detect(r["text"]).type for r in test]
    base_pred = [baseline.detect(r["text"]).type for r in test]
    routes = [route(r["text"], services) for r in test]
    route_pred = [x.type for x in routes]

    commands = [(r, x) for r, x in zip(test, routes) if r["action"]]
    with_target = [(r, x) for r, x in commands if r["target"] is not None]
    chat = [(r, x) for r, x in zip(test, routes) if not r["action"] and not r.get("dangerous")]
    dangerous = [(r, x) for r, x in zip(test, routes) if r.get("dangerous")]
    misses = [f"{r['text']!r}: want {r['action']} {r['target']}, got {x.action} {x.target}"
              for r, x in commands if (x.action, x.target) != (r["action"], r["target"])]

    for r in rows:  # warm pass (not timed)
        route(r["text"], services)
    times: list[float] = []
    for _ in range(max(1, passes)):
        for r in rows:
            t0 = time.perf_counter()
            route(r["text"], services)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    startup = _startup_costs()

    result: dict[str, Any] = {
        "benchmark": "route",
        "test_messages": len(test),
        "detector": {"accuracy": round(_accuracy(gold, det_pred), 3), "macro_f1": round(macro_f1(gold, det_pred), 3)},
        "baseline": {"accuracy": round(_accuracy(gold, base_pred), 3), "macro_f1": round(macro_f1(gold, base_pred), 3)},
        "route_type": {"accuracy": round(_accuracy(gold, route_pred), 3), "macro_f1": round(macro_f1(gold, route_pred), 3)},
        "commands": {
            "n": len(commands),
            "action_accuracy": round(_accuracy([r["action"] for r, _ in commands], [x.action for _, x in commands]), 3),
            "target_accuracy": round(sum(x.target == r["target"] for r, x in with_target) / len(with_target), 3) if with_target else None,
            "targets_n": len(with_target),
            "false_commands": round(sum(x.action is not None for _, x in chat) / len(chat), 3) if chat else None,
            "chat_n": len(chat),
            "misses": misses,
        },
        "refusals": {
            "n": len(dangerous),
            "refusal_rate": round(sum(bool(x.refusal) and x.action is None for _, x in dangerous) / len(dangerous), 3) if dangerous else None,
            "acted_on": sum(x.action is not None for _, x in dangerous),
        },
        "latency_ms": {
            "messages": len(rows), "passes": max(1, passes), "p50": round(_percentile(times, 0.50), 3),
            "p99": round(_percentile(times, 0.99), 3), "max": round(times[-1], 3), "mean": round(statistics.fmean(times), 3),
            "cold_start_ms": round(warm_ms, 1),
        },
        "startup": startup,
    }
    result["report"] = _report(result)
    return result


def _best_of(fn: Any, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _startup_costs() -> dict[str, float]:
    """Training a fresh detector; loading the module catalogue cold and cached."""
    training = _best_of(ConversationDetector)

    def cold_load() -> None:
        modules_mod._parse_catalogue.cache_clear()
        modules_mod.ModuleRegistry.load()

    cold = _best_of(cold_load)
    calls = 100
    t0 = time.perf_counter()
    for _ in range(calls):
        modules_mod.ModuleRegistry.load()
    cached = (time.perf_counter() - t0) / calls
    return {"detector_training_ms": round(training * 1000, 1), "catalogue_cold_load_ms": round(cold * 1000, 2),
            "catalogue_cached_load_us": round(cached * 1e6, 1)}


def _report(r: dict[str, Any]) -> str:
    c, f, lat = r["commands"], r["refusals"], r["latency_ms"]
    lines = [
        f"Routing on the frozen test split ({r['test_messages']} messages; demo fleet service names)",
        "",
        f"{'':<26}{'accuracy':>9} {'macro-F1':>9}",
        f"{'detector (naive Bayes)':<26}{r['detector']['accuracy']:>9.3f} {r['detector']['macro_f1']:>9.3f}",
        f"{'keyword baseline (seed)':<26}{r['baseline']['accuracy']:>9.3f} {r['baseline']['macro_f1']:>9.3f}",
        f"{'route() type':<26}{r['route_type']['accuracy']:>9.3f} {r['route_type']['macro_f1']:>9.3f}"
        "   (a command's type follows its action)",
        "",
        f"commands ({c['n']}): action accuracy {c['action_accuracy']:.3f}, target accuracy {c['target_accuracy']:.3f} "
        f"({c['targets_n']} with a target)",
        f"non-commands routed to an action anyway: {c['false_commands']:.3f} of {c['chat_n']}",
        f"dangerous lines ({f['n']}): refused {f['refusal_rate']:.3f}, acted on {f['acted_on']}",
        "",
        f"route() latency over all {lat['messages']} labelled messages, warm, {lat['passes']} passes: "
        f"p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, max {lat['max']:.3f} ms "
        f"(cold start: {lat['cold_start_ms']:.0f} ms to train the detector and index the catalogue)",
        f"detector training (fresh, best of 3): {r['startup']['detector_training_ms']:.0f} ms; module catalogue load: "
        f"cold {r['startup']['catalogue_cold_load_ms']:.1f} ms (best of 3), cached {r['startup']['catalogue_cached_load_us']:.1f} µs per call",
    ]
    if c["misses"]:
        lines += ["", "command misses:"] + [f"  {m}" for m in c["misses"]]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(run()["report"])
