"""The control socket against hostile or careless clients: every line gets an answer carrying
``"api": 1``, the connection survives, and the engine prints no traceback."""
from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket

import pytest

from aurora_tui.core.api import API_VERSION, EventRow, rpc_methods
from aurora_tui.core.control import method_table, reachable, socket_path
from aurora_tui.core.engine import Engine
from aurora_tui.core.remote import RemoteEngine

from .fleet import script_fleet
from .test_headless_cli import Headless

BAD_LINES = [
    (b'{"id": 1, "method": "no_such_method"}', "unknown method"),
    (b"this is not json", "bad request"),
    (b"\xff\xfe\xfd", "bad request"),
    (b"[1, 2, 3]", "a request is a JSON object"),
    (b'{"id": "seven", "method": "ping"}', "id must be an integer"),
    (b'{"id": 1.5, "method": "ping"}', "id must be an integer"),
    (b'{"id": true, "method": "ping"}', "id must be an integer"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'{"id": 2, "method": "ping", "params": [1, 2]}', "params must be an object"),
    (b'{"id": 3, "method": "plan", "params": {"plan_id": "abc"}}', ""),
    (b'{"id": 4, "method": "plan", "params": {"nope": 1}}', "bad params for plan"),
    (b'{"id": 5, "method": "logs", "params": {"service": "no_such_service"}}', "no_such_service"),
    (b'{"id": 6, "method": "incidents", "params": {"limit": {"a": [1]}}}', ""),
    # Ids that are not a 64-bit integer: too big for a float, too big for 64 bits, not a number at all.
    (b'{"id": 1e400, "method": "ping"}', "id must be an integer"),
    (b'{"id": ' + str(2**70).encode() + b', "method": "ping"}', "at most 64 bits"),
    (b'{"id": ' + b"9" * 5000 + b', "method": "ping"}', "bad request"),
    (b'{"id": NaN, "method": "ping"}', "got NaN"),
    (b'{"id": -Infinity, "method": "ping"}', "id must be an integer"),
    (b'{"id": {"a": 1}, "method": "ping"}', "got an object"),
    (b'{"id": [1], "method": "ping"}', "got an array"),
    # Params of the wrong shape or type, down to the fields inside them.
    (b'{"id": 7, "method": "chaos", "params": {"fault": "kill", "service": "aurora_ui", "params": [1]}}', "bad params for chaos"),
    (b'{"id": 8, "method": "chaos", "params": [1]}', "params must be an object"),
    (b'{"id": 9, "method": "silence", "params": {"service": "aurora_ui", "duration_s": 1e400}}', "finite number"),
    (b'{"id": 10, "method": "logs", "params": {"service": "aurora_ui", "lines": 1e308}}', "lines must be an integer"),
    (b'{"id": 11, "method": "incidents", "params": {"limit": ' + str(2**70).encode() + b"}}", "limit must be an integer"),
    (b'{"id": 12, "method": "import_learning", "params": {"entries": [1, 2]}}', "bad params for import_learning"),
    # Nesting: too deep for the decoder, and deep enough to trouble whatever prints it.
    (b'{"id": 13, "method": "ping", "params": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "nested too deeply"),
    (b'{"id": 14, "method": ' + b"[" * 900 + b"]" * 900 + b"}", "unknown method"),
    (b'{"id": 15, "method": "' + b"m" * 100_000 + b'"}', "unknown method"),
    (b'{"id": 16, "method": "ping"} {"id": 17}', "bad request"),
    (b"", "bad request"),
]


def _ask(conn: socket.socket, reader, line: bytes) -> dict:
    conn.sendall(line + b"\n")
    answer = reader.readline()
    assert answer, f"the engine dropped the connection after {line[:60]!r}"
    return json.loads(answer)


def test_bad_requests_get_error_answers_on_a_connection_that_survives(tmp_path):
    engine = Headless(tmp_path)
    try:
        engine.wait_healthy()
        with reachable(socket_path(engine.db)) as where, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(where)
            reader = conn.makefile("rb")
            for line, expected in BAD_LINES:
                answer = _ask(conn, reader, line)
                assert answer["ok"] is False, (line[:60], answer)
                assert answer["api"] == API_VERSION
                assert expected in answer["error"], (line[:60], answer)
            answer = _ask(conn, reader, b'{"id": 9, "method": "ping"}')
            assert answer == {"id": 9, "ok": True, "result": answer["result"], "api": API_VERSION}
            assert answer["result"]["pid"] == engine.proc.pid
            # A line over the limit gets exactly one answer; the next request is read whole.
            too_long = _ask(conn, reader, b'{"id": 18, "method": "ping", "pad": "' + b"x" * (3 << 20) + b'"}')
            assert too_long["ok"] is False and "too long" in too_long["error"]
            assert _ask(conn, reader, b'{"id": ' + str(2**63 - 1).encode() + b', "method": "ping"}')["id"] == 2**63 - 1
            answers_1000_concurrent_clients(engine)
        engine.proc.send_signal(signal.SIGTERM)
        assert engine.proc.wait(60) == 0
        assert "Traceback" not in engine.err()
    finally:
        engine.kill_everything()


CLIENTS = 1000


def answers_1000_concurrent_clients(engine: Headless) -> None:
    """As many clients as a burst of CLI calls might bring, all connecting before the engine accepts
    any: every one is accepted and answered (the listen backlog holds them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CLIENTS + 200
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
            pytest.skip(f"needs {wanted} open files for {CLIENTS} clients; the hard limit is {hard}")
        answers = asyncio.run(asyncio.wait_for(_burst(socket_path(engine.db), CLIENTS), 120))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    failed = [a for a in answers if not (isinstance(a, dict) and a.get("ok"))]
    assert not failed, f"{len(failed)} of {CLIENTS} clients got no answer, e.g. {failed[:3]}"
    assert sorted(a["id"] for a in answers) == list(range(CLIENTS))


async def _burst(path, count: int) -> list:
    with reachable(path) as where:
        opened = await asyncio.gather(*(asyncio.open_unix_connection(where) for _ in range(count)), return_exceptions=True)

    async def ping(i: int, connection) -> dict | BaseException:
        if isinstance(connection, BaseException):
            return connection
        reader, writer = connection
        try:
            writer.write(json.dumps({"id": i, "method": "ping"}).encode() + b"\n")
            await writer.drain()
            return json.loads(await reader.readline())
        except (OSError, ValueError) as exc:
            return exc
        finally:
            writer.close()

    return await asyncio.gather(*(ping(i, c) for i, c in enumerate(opened)))


def test_every_declared_method_is_reachable_over_the_socket():
    table = method_table(_Declared())
    for method in rpc_methods():
        assert method.wire in table, method.name
        for alias in method.aliases:
            assert alias in table
    assert not RemoteEngine.__abstractmethods__  # the client is derived from the same declaration


class _Declared:
    """Anything with the declared method names stands in for an engine when building the table."""

    def __getattr__(self, name: str):
        if name in {m.name for m in rpc_methods()}:
            return lambda **params: None
        raise AttributeError(name)


@pytest.mark.asyncio
async def test_a_remote_engine_returns_the_declared_types(tmp_path):
    config = script_fleet(tmp_path, {"idle": {"script": "import time; time.sleep(600)"}})
    async with Engine(config) as local:
        await local.start_fleet()
        async with RemoteEngine(local.db_path) as remote:
            snapshot = await remote.snapshot()
            assert snapshot.service("idle") is not None and snapshot.engine_pid == (await local.ping()).pid
            await local.records.store.write("SELECT 1")  # a barrier: the "started" event is committed
            events = await remote.recent_events(limit=5)
            assert any(e.kind == "started" and e.service == "idle" for e in events)
            assert all(isinstance(e, EventRow) for e in events)
            stats = await remote.heal_stats()
            assert stats == await local.heal_stats()
            silence = await remote.silence("idle", 60, reason="deploy")
            assert (silence.service, silence.reason) == ("idle", "deploy")
            assert [s.service for s in await remote.silences()] == ["idle"]
            assert (await remote.unsilence("idle")).removed is True
