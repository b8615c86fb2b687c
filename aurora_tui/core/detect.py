"""Detection: one pure function per issue pattern over the recent samples of one service or the host.

A detector receives a view (recent samples, oldest first, plus what the engine knows about exits, logs
and dependencies) and the pattern's parameters, and returns a :class:`Finding` or None. It never does
I/O and never looks at the clock: ``now`` is passed in, so recorded sequences replay exactly in tests.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .config import HealthCheck, ServiceConfig
from .model import EXEC_FAILED, TIMED_OUT, WRONG_ANSWER, WRONG_BODY, ExitInfo, HealthResult, HostSample, ServiceSample, StorageProblem
from .patterns import HOST
from .series import eta_text, last_checks, linear_fit

MB = 1024 * 1024
# A managed service that exited on its own and has not been started again (or is waiting to be).
DOWN_STATES = ("failed", "backoff")
# A start this soon after an exit is a try to bring the service back from it (back-offs are capped
# at a minute): until it passes a check, the service is not back.
RETRY_GAP = 120.0
Params = Mapping[str, float]


@dataclass
class Finding:
    pattern: str
    service: str
    summary: str
    evidence: dict[str, Any]
    onset: float
    # How far past its threshold the condition is (1.0 = right at it); None for conditions that have no
    # threshold to be past (an exit, a stopped process, a wrong body). Feeds the confidence.
    magnitude: float | None = None
    # How many consecutive scans (or events) showed it.
    persisted: int = 1
    debounce: int = 1


@dataclass
class DependencyState:
    healthy: bool
    state: str
    down_since: float | None = None


@dataclass
class ServiceView:
    config: ServiceConfig
    state: str
    samples: Sequence[ServiceSample]
    exits: Sequence[ExitInfo] = ()
    started_at: float | None = None
    healthy_since_start: bool = False
    log_tail: Sequence[str] = ()
    recent_errors: Sequence[str] = ()
    dependencies: Mapping[str, DependencyState] = field(default_factory=dict)
    lookup: str = ""  # monitor-only: how its process was found at the last probe, or why it was not
    # The newest samples of the process that runs now, when the caller keeps them as samples arrive
    # (the monitor does); else worked out from ``samples`` once.
    run: Sequence[ServiceSample] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def latest(self) -> ServiceSample | None:
        return self.samples[-1] if self.samples else None

    def current_run(self) -> list[ServiceSample]:
        """Samples of the process that runs now (a restart starts a new series)."""
        return self._current_run

    @functools.cached_property
    def _current_run(self) -> list[ServiceSample]:
        # Computed once per view: nearly every detector starts from it.
        if self.run is not None:
            return list(self.run)
        latest = self.latest
        if latest is None or latest.process is None:
            return []
        pid = latest.process.pid
        run: list[ServiceSample] = []
        for sample in reversed(self.samples):
            if sample.process is None or sample.process.pid != pid:
                break
            run.append(sample)
        return run[::-1]


@dataclass
class HostView:
    samples: Sequence[HostSample]
    storage: Sequence[StorageProblem] = ()  # what Aurora cannot write right now (see detect_storage)


# --- helpers ------------------------------------------------------------------------------------------


def streak(samples: Sequence[Any], condition: Callable[[Any], bool]) -> tuple[int, float | None]:
    """How many of the newest samples in a row meet ``condition``, and when that run began."""
    count, onset = 0, None
    for sample in reversed(samples):
        if not condition(sample):
            break
        count += 1
        onset = sample.ts
    return count, onset


def _alive(sample: ServiceSample) -> bool:
    return sample.process is not None


def _health(sample: ServiceSample) -> HealthResult | None:
    return sample.health if sample.process is not None else None


def _timed_out(sample: ServiceSample) -> bool:
    h = _health(sample)
    return h is not None and h.ok is False and (h.error or "").startswith(TIMED_OUT)


def _threshold_streak(view: ServiceView, p: Params, value: Callable[[ServiceSample], float | None], threshold: float):
    run = view.current_run()
    count, onset = streak(run, lambda s: (v := value(s)) is not None and v >= threshold)
    if count < max(1, int(p.get("debounce", 1))) or onset is None:
        return None
    values = [value(s) for s in run[-count:]]
    return count, onset, values


def _last_exit(view: ServiceView, now: float, window: float) -> ExitInfo | None:
    if not view.exits:
        return None
    last = view.exits[-1]
    # A service still down after its exit has not got over it, however long ago it was: the window
    # only ages out exits that something came back from.
    trying = view.state == "starting" and view.started_at is not None and view.started_at - last.ts <= RETRY_GAP
    return last if now - last.ts <= window or view.state in DOWN_STATES or trying else None


def _recovered_after(view: ServiceView, ts: float) -> bool:
    """The service came back healthy from a start that happened after ``ts``."""
    return view.started_at is not None and view.started_at >= ts and view.healthy_since_start


def _exit_evidence(view: ServiceView, info: ExitInfo) -> dict[str, Any]:
    return {
        "exit_code": info.code,
        "signal": info.signal,
        "runtime_s": round(info.runtime, 2),
        "exited_at": info.ts,
        "log_tail": list(view.log_tail)[-8:],
    }


# --- service detectors --------------------------------------------------------------------------------


def crashed(view: ServiceView, p: Params, now: float) -> Finding | None:
    last = _last_exit(view, now, p["window_s"])
    if last is None or _recovered_after(view, last.ts):
        return None
    return Finding("crashed", view.name, f"{view.name} {last.describe()}", _exit_evidence(view, last), last.ts)


def _loop_exits(view: ServiceView, p: Params, now: float) -> list[ExitInfo]:
    """The short runs in the window, or, if longer, the chain of short runs back from now, each within
    the window of the next: a back-off at its cap spaces a loop out further than the window holds."""
    short, window = p["short_run_s"], p["window_s"]
    recent = [e for e in view.exits if now - e.ts <= window and e.runtime < short]
    chain, later = [], now
    for e in reversed(view.exits):
        if e.runtime >= short or later - e.ts > window:
            break
        chain, later = [e, *chain], e.ts
    return chain if len(chain) > len(recent) else recent


def crash_loop(view: ServiceView, p: Params, now: float) -> Finding | None:
    recent = _loop_exits(view, p, now)
    needed = int(p["exits"])
    if len(recent) < needed:
        return None
    latest = recent[-1]
    if _recovered_after(view, latest.ts) and view.started_at is not None and now - view.started_at >= p["short_run_s"]:
        return None
    evidence = _exit_evidence(view, latest) | {
        "exits_in_window": len(recent),
        "window_s": p["window_s"],
        "runtimes_s": [round(e.runtime, 2) for e in recent],
        "exit_codes": [e.code if e.signal is None else e.signal for e in recent],
    }
    summary = f"{view.name} exited {len(recent)} times in {p['window_s']:.0f}s, each after under {p['short_run_s']:.0f}s"
    return Finding("crash_loop", view.name, summary, evidence, recent[0].ts, magnitude=len(recent) / needed, persisted=len(recent))


def startup_failure(view: ServiceView, p: Params, now: float) -> Finding | None:
    last = _last_exit(view, now, p["window_s"])
    if last is None or last.was_healthy or last.signal is not None or last.code == 0:
        return None
    if last.runtime > p["max_runtime_s"] or _recovered_after(view, last.ts):
        return None
    failures = [e for e in view.exits if now - e.ts <= p["window_s"] and not e.was_healthy and e.signal is None and e.runtime <= p["max_runtime_s"]] or [last]
    errors = [line for line in view.log_tail if "Error" in line or "error" in line or "Exception" in line][-5:]
    cause = errors[-1].strip() if errors else f"exit status {last.code}"
    evidence = _exit_evidence(view, last) | {"start_errors": errors, "failed_starts": len(failures)}
    summary = f"{view.name} exits {last.runtime:.1f}s after start with status {last.code}: {cause[:160]}"
    return Finding("startup_failure", view.name, summary, evidence, failures[0].ts, persisted=len(failures))


def hung(view: ServiceView, p: Params, now: float) -> Finding | None:
    run = view.current_run()
    if not run:
        return None
    stopped, stopped_onset = streak(run, lambda s: s.process.status == "stopped")
    timeouts, timeout_onset = streak(run, _timed_out)
    if not stopped and not timeouts:
        return None
    latest = run[-1]
    process = latest.process
    assert process is not None
    evidence = {
        "pid": process.pid,
        "process_status": process.status,
        "cpu_percent": round(process.cpu_percent, 1),
        "health_timeouts_in_a_row": timeouts,
        "health_error": latest.health.error if latest.health else None,
        # A process stuck in a busy loop stays "running", one blocked forever "sleeping": only its
        # silence gives it away, so what was asked and what came back are the evidence.
        "process_states": [s.process.status for s in run[-max(1, timeouts):]],
        "check": view.config.health.describe(view.config.port),
        "answer": latest.health.body_excerpt if latest.health else None,
    }
    if stopped >= 1 and stopped_onset is not None:
        summary = f"{view.name} (pid {process.pid}) is stopped (state T): alive but not running"
        return Finding("hung", view.name, summary, evidence, stopped_onset, magnitude=2.0, persisted=max(stopped, timeouts), debounce=1)
    debounce = int(p["debounce"])
    if timeouts >= debounce and timeout_onset is not None and view.state == "running":
        how = f"{process.status}, {process.cpu_percent:.0f}% CPU"
        summary = f"{view.name} (pid {process.pid}, {how}) is alive but its health check timed out {timeouts} times in a row"
        return Finding("hung", view.name, summary, evidence, timeout_onset, persisted=timeouts, debounce=debounce)
    return None


def _count_pattern(pattern: str, attr: str, noun: str) -> Callable[[ServiceView, Params, float], Finding | None]:
    def detect(view: ServiceView, p: Params, now: float) -> Finding | None:
        hit = _threshold_streak(view, p, lambda s: float(len(getattr(s.process, attr))) if attr == "orphans" else float(getattr(s.process, attr)), p["count"])
        if hit is None:
            return None
        count, onset, values = hit
        latest = view.current_run()[-1].process
        assert latest is not None
        evidence: dict[str, Any] = {"pid": latest.pid, noun: int(values[-1]), "history": [int(v) for v in values]}
        if attr == "orphans":
            evidence["orphan_pids"] = list(latest.orphans)
        summary = f"{view.name} has {int(values[-1])} {noun} (for {count} scans)"
        return Finding(pattern, view.name, summary, evidence, onset, magnitude=values[-1] / p["count"], persisted=count, debounce=int(p["debounce"]))

    detect.__name__ = pattern
    return detect


zombie_children = _count_pattern("zombie_children", "zombies", "zombie children")
orphaned_children = _count_pattern("orphaned_children", "orphans", "orphaned processes")


def _port_holder_is_stale_copy(view: ServiceView, cmdline: Sequence[str]) -> bool:
    command = list(view.config.command)
    # The interpreter path may differ (a venv's python and /usr/bin/python3 run the same program).
    return bool(cmdline) and (list(cmdline) == command or (len(command) > 1 and list(cmdline[1:]) == command[1:]))


def _port_conflict(stale: bool) -> Callable[[ServiceView, Params, float], Finding | None]:
    pattern = "port_conflict_stale" if stale else "port_conflict_foreign"

    def detect(view: ServiceView, p: Params, now: float) -> Finding | None:
        if not view.config.managed or view.config.port is None:
            return None
        def held_by_other(s: ServiceSample) -> bool:
            # A holder whose command line cannot be read (exiting, or not ours to inspect) proves nothing.
            return bool(s.port and s.port.listening and s.port.holder_pid and s.port.holder_is_service is False and s.port.holder_cmdline)

        count, onset = streak(view.samples, held_by_other)
        if count < int(p["debounce"]) or onset is None:
            return None
        port = view.samples[-1].port
        assert port is not None
        # Another Aurora engine's service runs the same command line, yet it is nobody's stale copy: it
        # is supervised, and killing it would only start a tug of war between the two engines.
        if (port.holder_engine is None and _port_holder_is_stale_copy(view, port.holder_cmdline)) != stale:
            return None
        who = f"{'a stale copy of the service' if stale else 'a foreign process'}: pid {port.holder_pid} ({' '.join(port.holder_cmdline)[:120]})"
        if port.holder_engine is not None:
            who = f"pid {port.holder_pid}, {port.holder_owner}"
        summary = f"port {port.port} of {view.name} is held by {who}"
        evidence = {
            "port": port.port,
            "holder_pid": port.holder_pid,
            "holder_cmdline": port.holder_cmdline,
            "holder_username": port.holder_username,
            "holder_engine": port.holder_engine, "holder_service": port.holder_service,
            "service_state": view.state,
            "log_tail": list(view.log_tail)[-5:],
        }
        return Finding(pattern, view.name, summary, evidence, onset, magnitude=1.5, persisted=count, debounce=int(p["debounce"]))

    detect.__name__ = pattern
    return detect


port_conflict_foreign = _port_conflict(stale=False)
port_conflict_stale = _port_conflict(stale=True)


def port_not_listening(view: ServiceView, p: Params, now: float) -> Finding | None:
    cfg = view.config
    if cfg.port is None or view.state != "running":
        return None
    if view.started_at is not None and now - view.started_at < cfg.start_grace and not view.healthy_since_start:
        return None
    count, onset = streak(view.current_run(), lambda s: s.port is not None and not s.port.listening)
    if count < int(p["debounce"]) or onset is None:
        return None
    latest = view.current_run()[-1]
    assert latest.process is not None
    summary = f"{view.name} (pid {latest.process.pid}) runs but nothing listens on port {cfg.port}"
    evidence = {"pid": latest.process.pid, "port": cfg.port, "health_error": latest.health.error if latest.health else None}
    return Finding("port_not_listening", view.name, summary, evidence, onset, persisted=count, debounce=int(p["debounce"]))


def unmanaged_gone(view: ServiceView, p: Params, now: float) -> Finding | None:
    """A monitor-only service whose process cannot be found: Aurora saw no exit (it is not the parent),
    only absence, so this is not ``crashed`` and its fix is never an automatic restart."""
    cfg = view.config
    count, onset = streak(view.samples, lambda s: s.process is None)
    if cfg.managed or count < int(p["debounce"]) or onset is None:
        return None
    last = next((s for s in reversed(view.samples) if s.process is not None), None)
    evidence = {
        "found_by": view.lookup,
        "last_pid": last.process.pid if last and last.process else None,
        "last_cmdline": last.process.cmdline if last and last.process else [],
        "last_seen": last.ts if last else None,
        "start_command": list(cfg.start_command),
        "stop_command": list(cfg.stop_command),
    }
    was = f" (was pid {evidence['last_pid']})" if last else ""
    summary = f"monitor-only {view.name} is not running{was}: {view.lookup or 'its process is gone'}"
    return Finding("unmanaged_gone", view.name, summary, evidence, onset, persisted=count, debounce=int(p["debounce"]))


def high_cpu(view: ServiceView, p: Params, now: float) -> Finding | None:
    limit = view.config.limits.cpu_percent or p["percent"]
    hit = _threshold_streak(view, p, lambda s: s.process.cpu_percent, limit)
    if hit is None:
        return None
    count, onset, values = hit
    mean = sum(values) / len(values)
    summary = f"{view.name} used {mean:.0f}% CPU (limit {limit:g}%) for {count} scans"
    evidence = {"cpu_percent": [round(v, 1) for v in values], "limit_percent": limit}
    return Finding("high_cpu", view.name, summary, evidence, onset, magnitude=mean / limit, persisted=count, debounce=int(p["debounce"]))


def memory_leak(view: ServiceView, p: Params, now: float) -> Finding | None:
    run = view.current_run()
    if len(run) < int(p["min_samples"]):
        return None
    window = run[-30:]
    # Cheap tests first: most services do not grow, and a fit over the window is the costly part.
    if window[-1].ts - window[0].ts < p["min_span_s"] or (window[-1].process.rss - window[0].process.rss) / MB < p["min_growth_mb"]:
        return None
    points = [(s.ts, s.process.rss / MB) for s in window]
    slope, r2 = linear_fit(points)
    per_min = slope * 60
    growth = points[-1][1] - points[0][1]
    if per_min < p["min_mb_per_min"] or r2 < p["min_r2"] or growth < p["min_growth_mb"]:
        return None
    limit = view.config.limits.memory_mb or p["memory_mb"]
    current = points[-1][1]
    eta = (limit - current) / slope if current < limit else 0.0
    if eta > p["horizon_s"]:
        return None
    when = "has reached" if eta <= 0 else f"will reach its {limit:g} MB limit in about {eta_text(eta)}"
    summary = f"{view.name} memory grows {per_min:.0f} MB/min (now {current:.0f} MB) and {when}"
    evidence = {
        "rss_mb": [round(v, 1) for _, v in points],
        "mb_per_min": round(per_min, 1),
        "r2": round(r2, 3),
        "limit_mb": limit,
        "eta_s": round(eta, 1),
        "predicted_at": now + eta,
    }
    onset = points[0][0]
    return Finding("memory_leak", view.name, summary, evidence, onset, magnitude=min(3.0, 1 + r2 * per_min / (10 * p["min_mb_per_min"])), persisted=len(points), debounce=int(p["min_samples"]))


def memory_limit(view: ServiceView, p: Params, now: float) -> Finding | None:
    limit = view.config.limits.memory_mb or p["memory_mb"]
    hit = _threshold_streak(view, p, lambda s: s.process.rss / MB, limit)
    if hit is None:
        return None
    count, onset, values = hit
    summary = f"{view.name} uses {values[-1]:.0f} MB, over its {limit:g} MB limit, for {count} scans"
    evidence = {"rss_mb": [round(v, 1) for v in values], "limit_mb": limit}
    return Finding("memory_limit", view.name, summary, evidence, onset, magnitude=values[-1] / limit, persisted=count, debounce=int(p["debounce"]))


def fd_exhaustion(view: ServiceView, p: Params, now: float) -> Finding | None:
    percent = view.config.limits.fds_percent or p["percent"]

    def used(s: ServiceSample) -> float | None:
        return 100.0 * s.process.fds / s.process.fd_limit if s.process.fd_limit else None

    hit = _threshold_streak(view, p, used, percent)
    if hit is None:
        return None
    count, onset, values = hit
    latest = view.current_run()[-1].process
    assert latest is not None
    summary = f"{view.name} holds {latest.fds} of {latest.fd_limit} file descriptors ({values[-1]:.0f}%, limit {percent:g}%)"
    evidence = {"fds": latest.fds, "fd_limit": latest.fd_limit, "percent": [round(v, 1) for v in values], "limit_percent": percent}
    return Finding("fd_exhaustion", view.name, summary, evidence, onset, magnitude=values[-1] / percent, persisted=count, debounce=int(p["debounce"]))


def _limit_pattern(pattern: str, attr: str, limit_attr: str, noun: str):
    def detect(view: ServiceView, p: Params, now: float) -> Finding | None:
        limit = getattr(view.config.limits, limit_attr) or p[limit_attr]
        hit = _threshold_streak(view, p, lambda s: float(getattr(s.process, attr)), float(limit))
        if hit is None:
            return None
        count, onset, values = hit
        summary = f"{view.name} has {int(values[-1])} {noun} (limit {limit:g}) for {count} scans"
        evidence = {noun.replace(" ", "_"): [int(v) for v in values], "limit": limit}
        return Finding(pattern, view.name, summary, evidence, onset, magnitude=values[-1] / limit, persisted=count, debounce=int(p["debounce"]))

    detect.__name__ = pattern
    return detect


thread_explosion = _limit_pattern("thread_explosion", "threads", "threads", "threads")
connection_exhaustion = _limit_pattern("connection_exhaustion", "connections", "connections", "open connections")


def _status_share(pattern: str, statuses: Callable[[int], bool], what: str):
    """A detector for a share of health answers with an unwanted status. ``what`` may name the codes
    seen ("{codes}") and those expected ("{expected}"). A status the check expects never counts."""

    def detect(view: ServiceView, p: Params, now: float) -> Finding | None:
        check = view.config.health

        def hit(s: ServiceSample) -> bool:
            code = s.health.status_code
            return code is not None and not check.expects_status(code) and statuses(code)

        checks = last_checks(view.current_run(), int(p["window"]))
        if not checks or not hit(checks[-1]):
            return None  # the newest answer is fine: nothing to count
        hits = [s for s in checks if hit(s)]
        if len(hits) < int(p["debounce"]) or len(hits) / len(checks) < p["ratio"]:
            return None
        share = len(hits) / len(checks)
        codes = [s.health.status_code for s in checks]
        seen = ", ".join(str(c) for c in sorted({s.health.status_code for s in hits}))
        label = what.format(codes=seen, expected=check.expected_statuses())
        summary = f"{view.name} answered {label} to {len(hits)} of its last {len(checks)} health checks"
        latest = checks[-1].health
        evidence = {
            "status_codes": codes, "share": round(share, 2), "body_excerpt": latest.body_excerpt,
            "expected": check.expected_statuses(), "check": check.describe(view.config.port), "health_error": latest.error,
        }
        return Finding(pattern, view.name, summary, evidence, hits[0].ts, magnitude=share / p["ratio"], persisted=len(hits), debounce=int(p["debounce"]))

    detect.__name__ = pattern
    return detect


http_errors = _status_share("http_errors", lambda code: 500 <= code <= 599, "5xx")
rate_limited = _status_share("rate_limited", lambda code: code == 429, "429 Too Many Requests")
# Every other status the check does not expect (a 404 or 403 from a web server that lost its content or
# its permissions, a redirect): the service answers, but not as configured.
http_unexpected_status = _status_share(
    "http_unexpected_status", lambda code: not (500 <= code <= 599 or code == 429), "HTTP {codes} where {expected} was expected",
)


def slow_responses(view: ServiceView, p: Params, now: float) -> Finding | None:
    limit = p["latency_ms"]
    hit = _threshold_streak(view, p, lambda s: s.health.latency_ms if s.health and s.health.latency_ms is not None else None, limit)
    if hit is None:
        return None
    count, onset, values = hit
    summary = f"{view.name} took {values[-1]:.0f} ms to answer its health check (threshold {limit:g} ms) for {count} scans"
    evidence = {"latency_ms": [round(v) for v in values], "threshold_ms": limit}
    return Finding("slow_responses", view.name, summary, evidence, onset, magnitude=values[-1] / limit, persisted=count, debounce=int(p["debounce"]))


def _wrong_content(check: HealthCheck, h: HealthResult | None) -> bool:
    """The service answered, but not what a healthy one says: an expected HTTP status with the wrong
    body, a tcp peer saying something else, or an exec check that ran and failed."""
    if h is None or h.ok is not False:
        return False
    error = h.error or ""
    if h.kind == "http":
        return h.status_code is not None and check.expects_status(h.status_code) and error.startswith(WRONG_BODY)
    return error.startswith((WRONG_ANSWER, EXEC_FAILED))


def health_content_mismatch(view: ServiceView, p: Params, now: float) -> Finding | None:
    check = view.config.health
    count, onset = streak(view.current_run(), lambda s: _wrong_content(check, s.health))
    if count < int(p["debounce"]) or onset is None:
        return None
    latest = view.current_run()[-1].health
    assert latest is not None
    said = (latest.body_excerpt or "")[:80]
    if latest.kind == "http":
        summary = f"{view.name} answers {latest.status_code} but {latest.error}: {said!r}"
        expected = check.expect_body
    elif latest.kind == "tcp":
        asked = f" to {check.send!r}" if check.send is not None else ""
        reply = f"answered {said!r}" if said else "closed the connection without answering"
        summary = f"{view.name} {reply}{asked}; a healthy one says {check.expect!r}"
        expected = check.expect
    else:
        program = check.exec[0].rsplit("/", 1)[-1] if check.exec else "check"
        summary = f"{view.name}'s health command {program} exited{(latest.error or '').removeprefix(EXEC_FAILED)}"
        expected = "exit status 0"
    evidence = {"expected": expected, "body_excerpt": latest.body_excerpt, "check": check.describe(view.config.port), "health_error": latest.error}
    return Finding("health_content_mismatch", view.name, summary, evidence, onset, persisted=count, debounce=int(p["debounce"]))


def dependency_down(view: ServiceView, p: Params, now: float) -> Finding | None:
    down = {name: dep for name, dep in view.dependencies.items() if not dep.healthy and dep.state != "starting"}
    if not down:
        return None
    onset = min((d.down_since or now) for d in down.values())
    names = sorted(down)
    summary = f"{view.name} depends on {', '.join(names)}, which {'is' if len(names) == 1 else 'are'} down"
    evidence = {"dependencies_down": {n: {"state": d.state, "down_since": d.down_since} for n, d in down.items()}}
    return Finding("dependency_down", view.name, summary, evidence, onset, persisted=1, debounce=int(p["debounce"]))


def flapping(view: ServiceView, p: Params, now: float) -> Finding | None:
    checks = last_checks(view.samples, int(p["window"]), answered=True)
    if len(checks) < 2:
        return None
    flips = [b for a, b in zip(checks, checks[1:]) if a.health.ok != b.health.ok]
    needed = int(p["transitions"])
    if len(flips) < needed:
        return None
    summary = f"{view.name} health changed {len(flips)} times in its last {len(checks)} checks"
    evidence = {"health": ["ok" if s.health.ok else "fail" for s in checks], "transitions": len(flips)}
    return Finding("flapping", view.name, summary, evidence, flips[0].ts, magnitude=len(flips) / needed, persisted=len(flips), debounce=needed)


def log_error_burst(view: ServiceView, p: Params, now: float) -> Finding | None:
    samples = view.samples
    if len(samples) < 2:
        return None
    debounce = int(p["debounce"])
    bursts = 0
    rates: list[float] = []
    onset = None
    for older, newer in reversed(list(zip(samples, samples[1:]))):
        span = max(newer.ts - older.ts, 1e-3)
        lines = newer.log_errors - older.log_errors
        rate = lines / span
        if lines < p["min_lines"] or rate < p["per_second"]:
            break
        bursts += 1
        rates.append(rate)
        onset = older.ts
        if bursts >= debounce:
            break
    if bursts < debounce or onset is None:
        return None
    summary = f"{view.name} wrote {rates[0]:.0f} error lines per second"
    evidence = {"errors_per_second": round(rates[0], 1), "recent_errors": list(view.recent_errors)[-8:]}
    return Finding("log_error_burst", view.name, summary, evidence, onset, magnitude=rates[0] / p["per_second"], persisted=bursts, debounce=debounce)


SERVICE_DETECTORS: dict[str, Callable[[ServiceView, Params, float], Finding | None]] = {
    f.__name__: f
    for f in (
        crashed, crash_loop, startup_failure, hung, zombie_children, orphaned_children, port_conflict_foreign,
        port_conflict_stale, port_not_listening, unmanaged_gone, high_cpu, memory_leak, memory_limit, fd_exhaustion,
        thread_explosion, connection_exhaustion, http_errors, rate_limited, http_unexpected_status, slow_responses,
        health_content_mismatch, dependency_down, flapping, log_error_burst,
    )
}


# --- host detectors -----------------------------------------------------------------------------------


def _host_streak(view: HostView, p: Params, condition: Callable[[HostSample], bool]) -> tuple[int, float] | None:
    count, onset = streak(view.samples, condition)
    if count < int(p["debounce"]) or onset is None:
        return None
    if view.samples[-1].ts - onset < p.get("min_duration_s", 0.0):
        return None
    return count, onset


def disk_full(view: HostView, p: Params, now: float) -> Finding | None:
    if not view.samples:
        return None
    latest = view.samples[-1]
    hit = _host_streak(view, p, lambda s: s.disk_percent >= p["percent"])
    if hit is not None:
        count, onset = hit
        summary = f"the data disk is {latest.disk_percent:.1f}% full (threshold {p['percent']:g}%), {latest.disk_free / MB / 1024:.1f} GiB free"
        evidence = {"disk_percent": latest.disk_percent, "disk_free": latest.disk_free, "threshold_percent": p["percent"]}
        return Finding("disk_full", HOST, summary, evidence, onset, magnitude=latest.disk_percent / p["percent"], persisted=count, debounce=int(p["debounce"]))
    points = [(s.ts, s.disk_percent) for s in view.samples[-30:]]
    if len(points) < 10 or points[-1][1] - points[0][1] < p["min_growth_percent"]:
        return None
    slope, r2 = linear_fit(points)
    if slope <= 0 or r2 < 0.9:
        return None
    eta = (p["percent"] - latest.disk_percent) / slope
    if eta > p["horizon_s"]:
        return None
    summary = f"the data disk fills at {slope * 3600:.1f}%/h and will pass {p['percent']:g}% in about {eta_text(eta)}"
    evidence = {"disk_percent": [round(v, 2) for _, v in points], "percent_per_hour": round(slope * 3600, 2), "eta_s": round(eta), "r2": round(r2, 3)}
    return Finding("disk_full", HOST, summary, evidence, points[0][0], magnitude=1.0, persisted=len(points), debounce=10)


def host_memory_pressure(view: HostView, p: Params, now: float) -> Finding | None:
    hit = _host_streak(view, p, lambda s: s.mem_percent >= p["percent"])
    if hit is None:
        return None
    count, onset = hit
    latest = view.samples[-1]
    summary = f"host memory is {latest.mem_percent:.0f}% used (threshold {p['percent']:g}%), {latest.mem_available / MB:.0f} MB available"
    evidence = {"mem_percent": [s.mem_percent for s in view.samples[-count:]], "mem_available": latest.mem_available, "threshold_percent": p["percent"]}
    return Finding("host_memory_pressure", HOST, summary, evidence, onset, magnitude=latest.mem_percent / p["percent"], persisted=count, debounce=int(p["debounce"]))


def host_cpu_overload(view: HostView, p: Params, now: float) -> Finding | None:
    def busy(s: HostSample) -> bool:
        return s.cpu_percent >= p["percent"] or s.load1 / max(1, s.cpu_count) >= p["load_per_cpu"]

    hit = _host_streak(view, p, busy)
    if hit is None:
        return None
    count, onset = hit
    recent = view.samples[-count:]
    mean = sum(s.cpu_percent for s in recent) / count
    latest = recent[-1]
    summary = f"host CPU at {mean:.0f}% (threshold {p['percent']:g}%), load {latest.load1:.1f} on {latest.cpu_count} CPUs, for {count} scans"
    evidence = {"cpu_percent": [round(s.cpu_percent, 1) for s in recent], "load1": latest.load1, "cpu_count": latest.cpu_count}
    magnitude = max(mean / p["percent"], latest.load1 / max(1, latest.cpu_count) / p["load_per_cpu"])
    return Finding("host_cpu_overload", HOST, summary, evidence, onset, magnitude=magnitude, persisted=count, debounce=int(p["debounce"]))


HOST_DETECTORS: dict[str, Callable[[HostView, Params, float], Finding | None]] = {
    f.__name__: f for f in (disk_full, host_memory_pressure, host_cpu_overload)
}


def detect_service(view: ServiceView, params: Callable[[str], Params], now: float) -> list[Finding]:
    findings = []
    for pattern, detector in SERVICE_DETECTORS.items():
        finding = detector(view, params(pattern), now)
        if finding is not None:
            findings.append(finding)
    return findings


def detect_host(view: HostView, params: Callable[[str], Params], now: float) -> list[Finding]:
    return [f for pattern, detector in HOST_DETECTORS.items() if (f := detector(view, params(pattern), now))]
