"""Pure pieces: the restart back-off policy, the log sink, number formatting, JSON round trips."""
from __future__ import annotations

from aurora_tui.core import restart_policy
from aurora_tui.core.format import bytes_h, duration_h
from aurora_tui.core.logsink import LogSink
from aurora_tui.core.model import ExitInfo, FleetSnapshot, ServiceStatus, from_jsonable, to_jsonable


def test_backoff_grows_to_a_cap_and_never_stops():
    delays = [restart_policy.restart_delay(0.1, n) for n in range(1, 12)]
    assert delays[0] == 0.1
    assert all(a <= b for a, b in zip(delays, delays[1:]))
    assert delays[-1] == restart_policy.BACKOFF_CAP
    assert restart_policy.restart_delay(5.0, 1) == 5.0


def test_short_runs_count_and_reset():
    assert restart_policy.consecutive_short_runs(0, 0.2) == 1
    assert restart_policy.consecutive_short_runs(3, 0.2) == 4
    assert restart_policy.consecutive_short_runs(3, restart_policy.SHORT_RUN + 1) == 1


def test_log_sink_rotates_and_keeps_a_tail(tmp_path):
    sink = LogSink(tmp_path / "svc.log", max_bytes=1000, backups=2, tail_lines=5)
    for i in range(400):  # about 3.3 KB through a 1000-byte cap: three rotations
        sink.write(f"line {i}\n".encode())
    sink.write(b"partial without newline")
    assert sink.tail(3) == ["line 398", "line 399", "partial without newline"]
    sink.close()
    assert (tmp_path / "svc.log").stat().st_size <= 1000
    assert (tmp_path / "svc.log.1").exists() and (tmp_path / "svc.log.2").exists()
    assert not (tmp_path / "svc.log.3").exists()


def test_log_sink_splits_chunks_across_lines_and_bounds_runaway_lines(tmp_path):
    sink = LogSink(tmp_path / "svc.log")
    sink.write(b"hel")
    sink.write(b"lo\nwor")
    sink.write(b"ld\n")
    assert sink.tail(2) == ["hello", "world"]
    sink.write(b"x" * 10000)
    assert max(len(line) for line in sink.tail(10)) <= 10000
    sink.mark("started pid 1")
    assert sink.tail(1)[0].startswith("--- aurora ") and sink.tail(1)[0].endswith("started pid 1 ---")
    sink.close()


def test_formatting():
    assert bytes_h(None) == "-" and bytes_h(512) == "512B" and bytes_h(3 * 1024**2) == "3.0M"
    assert duration_h(5) == "5s" and duration_h(125) == "2m05s" and duration_h(7300) == "2h01m" and duration_h(90000) == "1d01h"


def test_snapshot_round_trips_through_json():
    status = ServiceStatus("a", "running", True, 1, 80, True, 0, 1.0, 2.0, 3, last_exit=ExitInfo(1.0, None, "SIGKILL", False, 2.0))
    snap = FleetSnapshot(1.0, [status], None, None, 0, 15.0, 1, "db", "src")
    again = from_jsonable(FleetSnapshot, to_jsonable(snap))
    assert again == snap and isinstance(again.services[0].last_exit, ExitInfo)
