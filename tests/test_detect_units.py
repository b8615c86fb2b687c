"""Pure detection and diagnosis on recorded sample sequences: no processes, exact replay."""
from __future__ import annotations

import dataclasses

from aurora_tui.core import detect, detect_storage
from aurora_tui.core.config import HealthCheck, Limits, ServiceConfig
from aurora_tui.core.detect import DependencyState, HostView, ServiceView, detect_host, detect_service
from aurora_tui.core.diagnose import confidence, diagnose
from aurora_tui.core.model import ExitInfo, HealthResult, HostSample, PortFacts, ProcessFacts, ServiceSample
from aurora_tui.core.patterns import HOST, load_patterns, pattern_params

MB = 1024 * 1024
T0 = 1_000_000.0
SVC = ServiceConfig(
    name="api", command=("python3", "-m", "api"), port=8000,
    health=HealthCheck("http", "/healthz", 200, "ok", 2.0), limits=Limits(memory_mb=256, cpu_percent=90, threads=200, connections=150),
)


def facts(pid=100, rss_mb=30.0, cpu=1.0, status="sleeping", fds=10, threads=2, conns=1, zombies=0, orphans=(), fd_limit=1024):
    return ProcessFacts(pid, status, cpu, int(rss_mb * MB), fds, threads, conns, zombies, zombies, T0 - 100, ["python3"], [pid], fd_limit, list(orphans))


def ok_health(latency=5.0):
    return HealthResult("http", True, latency, 200, '{"status": "ok"}')


def sample(i, process=None, health=None, port=None, errors=0, state="running"):
    return ServiceSample("api", T0 + i, state, process if process is not None else facts(), port or PortFacts(8000, True, 100, ["python3"], "root", True), health if health is not None else ok_health(), errors)


def view(samples, **kw):
    kw.setdefault("started_at", T0 - 100)
    kw.setdefault("healthy_since_start", True)
    return ServiceView(config=SVC, state=kw.pop("state", "running"), samples=samples, **kw)


def run(pattern, v, now=None, **overrides):
    params = pattern_params(pattern) | overrides
    return detect.SERVICE_DETECTORS[pattern](v, params, now if now is not None else v.samples[-1].ts if v.samples else T0)


def quiet(n=30):
    return [sample(i) for i in range(n)]


def test_a_quiet_sequence_triggers_nothing():
    v = view(quiet())
    assert detect_service(v, lambda p: pattern_params(p), T0 + 30) == []


def test_every_pattern_has_a_detector_and_the_supersedes_graph_is_acyclic():
    patterns = load_patterns()
    assert len(patterns) == 29
    assert set(patterns) == set(detect.SERVICE_DETECTORS) | set(detect.HOST_DETECTORS) | set(detect_storage.STORAGE_DETECTORS)
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        assert state.get(node) != 1, f"supersedes cycle through {node}"
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in patterns[node].supersedes:
            assert nxt in patterns, nxt
            visit(nxt)
        state[node] = 2

    for pid in patterns:
        visit(pid)


def test_hung_from_stopped_status_and_from_timeouts():
    stopped = quiet(5) + [sample(5, facts(status="stopped"), HealthResult("http", False, error="timed out after 2s"))]
    assert run("hung", view(stopped)).evidence["process_status"] == "stopped"
    one_timeout = quiet(5) + [sample(5, health=HealthResult("http", False, error="timed out after 2s"))]
    assert run("hung", view(one_timeout)) is None  # below the debounce
    two = one_timeout + [sample(6, health=HealthResult("http", False, error="timed out after 2s"))]
    assert run("hung", view(two)).persisted == 2


def test_a_sigstopped_service_is_exactly_one_diagnosis():
    timeouts = [sample(i, facts(status="stopped"), HealthResult("http", False, error="timed out after 2s")) for i in range(6)]
    found = detect_service(view(quiet(5) + timeouts), lambda p: pattern_params(p), T0 + 11)
    assert [d.pattern for d in diagnose(found)] == ["hung"]


def test_a_process_that_vanished_between_samples_breaks_the_run():
    # psutil found nothing for one scan (process gone), then a new pid appears: thresholds restart.
    seq = [sample(i, facts(cpu=99)) for i in range(2)] + [sample(2, process=facts(pid=0), health=None)]
    seq[-1].process = None
    seq += [sample(3 + i, facts(pid=200, cpu=99)) for i in range(2)]
    v = view(seq)
    assert [s.process.pid for s in v.current_run()] == [200, 200]
    assert run("high_cpu", v) is None  # 2 high samples of the new pid < debounce 3
    assert run("high_cpu", view(seq + [sample(5, facts(pid=200, cpu=99))])) is not None


def test_a_reused_pid_does_not_carry_the_old_process_history():
    leaking = [sample(i, facts(pid=100, rss_mb=30 + 20 * i)) for i in range(8)]
    reused = leaking + [sample(8 + i, facts(pid=300, rss_mb=40)) for i in range(3)]
    assert run("memory_leak", view(leaking)) is not None
    assert run("memory_leak", view(reused)) is None


def test_memory_leak_predicts_the_limit_and_memory_limit_takes_over():
    growing = [sample(i * 2, facts(rss_mb=40 + 10 * i)) for i in range(8)]  # 300 MB/min, 110 MB now
    finding = run("memory_leak", view(growing))
    assert finding is not None and 0 < finding.evidence["eta_s"] < 60
    assert "will reach its 256 MB limit" in finding.summary
    over = growing + [sample(20 + i, facts(rss_mb=300 + i)) for i in range(2)]
    found = detect_service(view(over), lambda p: pattern_params(p), T0 + 22)
    assert [d.pattern for d in diagnose(found)] == ["memory_limit"]
    noisy = [sample(i, facts(rss_mb=40 + (i % 2) * 20)) for i in range(10)]  # sawtooth, not a trend
    assert run("memory_leak", view(noisy)) is None


def test_port_held_by_another_users_process_is_foreign():
    held = PortFacts(8000, True, 4242, ["nginx", "-g", "daemon off;"], "www-data", False)
    seq = quiet(3) + [sample(3, process=facts(), health=HealthResult("http", False, error="connection refused"), port=held)]
    seq[-1].process = None
    finding = run("port_conflict_foreign", view(seq, state="backoff", started_at=None))
    assert finding is not None and finding.evidence["holder_username"] == "www-data"
    assert run("port_conflict_stale", view(seq, state="backoff", started_at=None)) is None
    stale = PortFacts(8000, True, 4243, ["/usr/bin/python3", "-m", "api"], "root", False)
    seq[-1].port = stale
    assert run("port_conflict_stale", view(seq, state="backoff", started_at=None)) is not None
    assert run("port_conflict_foreign", view(seq, state="backoff", started_at=None)) is None


def test_crash_then_recovery():
    exit_ = ExitInfo(T0 + 10, None, "SIGKILL", False, 10.0, True)
    v = view(quiet(10), exits=[exit_], started_at=None, healthy_since_start=False, state="backoff")
    assert run("crashed", v, now=T0 + 10.1).evidence["signal"] == "SIGKILL"
    back = view(quiet(12), exits=[exit_], started_at=T0 + 10.2, healthy_since_start=True)
    assert run("crashed", back, now=T0 + 10.5) is None


def test_startup_failure_versus_crash_loop():
    fails = [ExitInfo(T0 + i, 78, None, False, 0.2, False) for i in range(4)]
    v = view(quiet(2), exits=fails, started_at=None, healthy_since_start=False, state="backoff",
             log_tail=["ConfigError: invalid value for 'workers'"])
    found = detect_service(v, lambda p: pattern_params(p), T0 + 4)
    assert [d.pattern for d in diagnose(found)] == ["startup_failure"]
    crashes = [ExitInfo(T0 + i, 1, None, False, 2.0, True) for i in range(4)]
    v = view(quiet(2), exits=crashes, started_at=None, healthy_since_start=False, state="backoff")
    assert [d.pattern for d in diagnose(detect_service(v, lambda p: pattern_params(p), T0 + 4))] == ["crash_loop"]
    killed = [ExitInfo(T0 + 1, None, "SIGKILL", False, 0.5, False)]
    assert run("startup_failure", view(quiet(2), exits=killed, started_at=None), now=T0 + 2) is None


def test_status_share_patterns_need_the_newest_answer_to_be_bad():
    bad = lambda i, code: sample(i, health=HealthResult("http", False, 3.0, code, "x", f"HTTP {code}"))  # noqa: E731
    seq = quiet(3) + [bad(3, 500), bad(4, 500)]
    assert run("http_errors", view(seq)).evidence["status_codes"][-2:] == [500, 500]
    assert run("http_errors", view(seq + [sample(5)])) is None
    assert run("rate_limited", view(quiet(3) + [bad(3, 429), bad(4, 429)])) is not None


def with_health(health, **changes):
    """The test service with another health check (and other config changes)."""
    return dataclasses.replace(SVC, health=health, **changes)


def view_of(config, samples, **kw):
    kw.setdefault("started_at", T0 - 100)
    kw.setdefault("healthy_since_start", True)
    return ServiceView(config=config, state=kw.pop("state", "running"), samples=samples, **kw)


def test_other_unexpected_statuses_have_a_pattern_of_their_own():
    bad = lambda i, code: sample(i, health=HealthResult("http", False, 3.0, code, f"<h1>{code}</h1>", f"HTTP {code}, expected 200"))  # noqa: E731
    not_found = quiet(3) + [bad(3, 404), bad(4, 404)]
    found = run("http_unexpected_status", view(not_found))
    assert found.evidence["status_codes"][-2:] == [404, 404] and found.evidence["expected"] == "200"
    assert found.evidence["body_excerpt"] == "<h1>404</h1>" and "/healthz" in found.evidence["check"]
    assert found.summary == "api answered HTTP 404 where 200 was expected to 2 of its last 4 health checks"
    assert run("http_errors", view(not_found)) is None and run("rate_limited", view(not_found)) is None
    for code in (301, 401, 403):
        assert run("http_unexpected_status", view(quiet(3) + [bad(3, code), bad(4, code)])) is not None
    # 5xx and 429 keep theirs; a single 404 is below the debounce; the newest answer must be bad.
    assert run("http_unexpected_status", view(quiet(3) + [bad(3, 503), bad(4, 503)])) is None
    assert run("http_unexpected_status", view(quiet(3) + [bad(3, 429), bad(4, 429)])) is None
    assert run("http_unexpected_status", view(quiet(3) + [bad(3, 404)])) is None
    assert run("http_unexpected_status", view(not_found + [sample(5)])) is None


def test_a_status_the_check_expects_is_never_a_finding():
    answered = lambda i, code: sample(i, health=HealthResult("http", True, 3.0, code, "x"))  # noqa: E731
    redirects = with_health(HealthCheck("http", "/", ("3xx", 200)))
    assert run("http_unexpected_status", view_of(redirects, quiet(3) + [answered(3, 302), answered(4, 301)])) is None
    maintenance = with_health(HealthCheck("http", "/", "5xx"))
    assert run("http_errors", view_of(maintenance, quiet(3) + [answered(3, 503), answered(4, 503)])) is None
    # ... and a status it expects with the wrong body is wrong content, whatever the status.
    wrong_body = HealthResult("http", False, 3.0, 204, "degraded", "body does not contain 'ok'")
    accepts_2xx = with_health(HealthCheck("http", "/", "2xx", "ok"))
    found = run("health_content_mismatch", view_of(accepts_2xx, [sample(i, health=wrong_body) for i in range(2)]))
    assert found.summary == "api answers 204 but body does not contain 'ok': 'degraded'"


def test_a_wrong_status_and_the_wrong_body_are_one_diagnosis():
    status = detect.Finding("http_unexpected_status", "api", "404", {"status_codes": [404]}, T0, magnitude=2.0, persisted=2, debounce=2)
    body = detect.Finding("health_content_mismatch", "api", "wrong body", {}, T0, persisted=2, debounce=2)
    (only,) = diagnose([status, body])
    assert only.pattern == "http_unexpected_status" and "health_content_mismatch" in only.related
    assert only.actions == ("notify",)  # escalated to a human: a restart serves the same 404


PING = HealthCheck("tcp", send="PING\r\n", expect="+PONG", timeout=1.0)


def test_a_tcp_peer_that_answers_something_else_is_wrong_content_not_a_hang():
    busy = HealthResult("tcp", False, None, None, "-BUSY Redis is busy\r\n", "answer does not contain '+PONG': answered '-BUSY Redis is busy\\r\\n' to 'PING\\r\\n'")
    v = view_of(with_health(PING), quiet(3) + [sample(3 + i, health=busy) for i in range(2)])
    found = run("health_content_mismatch", v)
    assert found.evidence["body_excerpt"] == "-BUSY Redis is busy\r\n" and found.evidence["expected"] == "+PONG"
    assert found.summary == "api answered '-BUSY Redis is busy\\r\\n' to 'PING\\r\\n'; a healthy one says '+PONG'"
    assert run("hung", v) is None


def test_a_silent_tcp_peer_is_hung_in_state_running_or_sleeping():
    silent = HealthResult("tcp", False, None, None, "", "timed out after 1s with no answer to 'PING\\r\\n'")
    for state in ("running", "sleeping"):
        v = view_of(with_health(PING), quiet(3) + [sample(3 + i, facts(status=state, cpu=99.0), silent) for i in range(2)])
        found = run("hung", v)
        assert found.evidence["process_states"] == [state, state] and found.evidence["answer"] == ""
        assert found.evidence["check"] == "tcp 127.0.0.1:8000, send 'PING\\r\\n', expect '+PONG'"
        assert f"(pid 100, {state}, 99% CPU) is alive but its health check timed out 2 times" in found.summary
        assert run("health_content_mismatch", v) is None


def test_a_failing_exec_check_is_wrong_content_and_one_that_cannot_run_is_not():
    pg = with_health(HealthCheck("exec", exec=("pg_isready", "-h", "127.0.0.1")), port=None)
    failed = HealthResult("exec", False, 40.0, None, "127.0.0.1:5432 - no response", "check exited with status 2: 127.0.0.1:5432 - no response")
    found = run("health_content_mismatch", view_of(pg, quiet(3) + [sample(3 + i, health=failed) for i in range(2)]))
    assert found.evidence["expected"] == "exit status 0" and found.evidence["check"] == "exec pg_isready -h 127.0.0.1"
    assert found.summary == "api's health command pg_isready exited with status 2: 127.0.0.1:5432 - no response"
    cannot = HealthResult("exec", False, error="cannot run 'pg_isready': No such file or directory")
    assert run("health_content_mismatch", view_of(pg, [sample(i, health=cannot) for i in range(3)])) is None
    hangs = HealthResult("exec", False, None, None, "", "timed out after 2s; killed its process group")
    assert run("hung", view_of(pg, [sample(i, health=hangs) for i in range(2)])) is not None


def test_flapping_and_dependency_down_supersede_plain_errors():
    flip = [sample(i, health=ok_health() if i % 2 else HealthResult("http", False, 3.0, 503, "x", "HTTP 503")) for i in range(10)]
    found = detect_service(view(flip), lambda p: pattern_params(p), T0 + 10)
    assert "flapping" in {f.pattern for f in found}
    assert "http_errors" not in {d.pattern for d in diagnose(found)}
    down = {"db": DependencyState(False, "running", T0)}
    errors = quiet(3) + [sample(3 + i, health=HealthResult("http", False, 3.0, 503, "x", "HTTP 503")) for i in range(3)]
    diagnoses = diagnose(detect_service(view(errors, dependencies=down), lambda p: pattern_params(p), T0 + 6))
    assert [d.pattern for d in diagnoses] == ["dependency_down"]
    assert "http_errors" in diagnoses[0].related
    starting = {"db": DependencyState(False, "starting", T0)}
    assert run("dependency_down", view(quiet(), dependencies=starting)) is None


def test_log_error_burst_uses_the_rate_between_scans():
    seq = [sample(i, errors=0) for i in range(5)] + [sample(5, errors=40)]
    assert run("log_error_burst", view(seq)).evidence["errors_per_second"] == 40
    slow_trickle = [sample(i, errors=i) for i in range(10)]
    assert run("log_error_burst", view(slow_trickle)) is None


def test_counts_and_limits():
    assert run("zombie_children", view(quiet(3) + [sample(3 + i, facts(zombies=2)) for i in range(2)])) is not None
    assert run("orphaned_children", view(quiet(3) + [sample(3 + i, facts(orphans=[7, 8])) for i in range(2)])).evidence["orphan_pids"] == [7, 8]
    assert run("fd_exhaustion", view([sample(i, facts(fds=900, fd_limit=1024)) for i in range(2)])) is not None
    assert run("fd_exhaustion", view([sample(i, facts(fds=900, fd_limit=None)) for i in range(2)])) is None
    assert run("thread_explosion", view([sample(i, facts(threads=250)) for i in range(2)])) is not None
    assert run("connection_exhaustion", view([sample(i, facts(conns=151)) for i in range(2)])) is not None
    assert run("slow_responses", view([sample(i, health=ok_health(1500)) for i in range(2)])) is not None
    mismatch = HealthResult("http", False, 3.0, 200, "degraded", "body does not contain 'ok'")
    assert run("health_content_mismatch", view([sample(i, health=mismatch) for i in range(2)])) is not None
    refused = HealthResult("http", False, error="connection refused")
    not_listening = [sample(i, health=refused, port=PortFacts(8000, False)) for i in range(2)]
    assert run("port_not_listening", view(not_listening)) is not None
    assert run("port_not_listening", view(not_listening, state="starting")) is None


def host(i, cpu=10.0, mem=40.0, disk=50.0, load=0.5):
    return HostSample(T0 + i, cpu, mem, 8 * 1024 * MB, load, load, load, disk, 100 * 1024 * MB, 2)


def test_host_patterns_respect_thresholds_durations_and_trends():
    params = lambda p: pattern_params(p)  # noqa: E731
    assert detect_host(HostView([host(i) for i in range(40)]), params, T0 + 40) == []
    full = HostView([host(i, disk=95) for i in range(3)])
    assert [f.pattern for f in detect_host(full, params, T0 + 3)] == ["disk_full"]
    filling = HostView([host(i * 10, disk=70 + i * 0.5) for i in range(20)])  # 0.05 %/s: 90% in ~5 min
    finding = detect.disk_full(filling, pattern_params("disk_full"), T0 + 200)
    assert finding is not None and "will pass 90%" in finding.summary
    busy = [host(i, cpu=99) for i in range(10)]
    assert detect.host_cpu_overload(HostView(busy), pattern_params("host_cpu_overload"), T0 + 10) is None  # < 30 s
    long_busy = [host(i * 5, cpu=99) for i in range(10)]
    assert detect.host_cpu_overload(HostView(long_busy), pattern_params("host_cpu_overload"), T0 + 50).service == HOST
    assert detect.host_memory_pressure(HostView([host(i * 5, mem=95) for i in range(4)]), pattern_params("host_memory_pressure"), T0 + 20) is not None


def test_confidence_moves_with_evidence_and_does_not_saturate():
    patterns = load_patterns()
    weak = detect.Finding("high_cpu", "api", "x", {}, T0, magnitude=1.0, persisted=3, debounce=3)
    strong = detect.Finding("high_cpu", "api", "x", {}, T0, magnitude=1.6, persisted=8, debounce=3)
    low, _ = confidence(weak, patterns["high_cpu"], 0, None)
    high, factors = confidence(strong, patterns["high_cpu"], 2, None)
    assert 1 <= low < high <= 10 and low <= 6
    assert set(factors) == {"base", "persistence", "magnitude", "corroboration", "learned"}
    learned_bad, _ = confidence(strong, patterns["high_cpu"], 0, 0.0)
    learned_good, _ = confidence(strong, patterns["high_cpu"], 0, 1.0)
    assert learned_bad < learned_good
