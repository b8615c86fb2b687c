"""Building real fleets for tests: demo configs on free ports, tiny custom services, engines that always close."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

from aurora_tui.core.config import Config, ServiceConfig, demo_config_text, load_config, parse_config, with_overrides

from .helpers import free_demo_offset, free_port

PY = sys.executable


def demo_fleet(tmp_path: Path, interval: float = 3600.0) -> Config:
    """The real demo fleet on free ports, with its database and logs under ``tmp_path``.

    The default interval is long on purpose: tests that need a scan ask for one, and tests about
    process exits prove that no scan was needed."""
    offset = free_demo_offset()
    path = tmp_path / "fleet.toml"
    path.write_text(demo_config_text(offset))
    config = with_overrides(load_config(path), db=tmp_path / "aurora.db", interval=interval)
    return with_logs(config, tmp_path / "logs")


def with_logs(config: Config, log_dir: Path) -> Config:
    return dataclasses.replace(config, settings=dataclasses.replace(config.settings, log_dir=log_dir))


def script_fleet(tmp_path: Path, services: dict[str, dict], interval: float = 3600.0) -> Config:
    """A fleet of small Python programs: ``{"name": {"script": "...", **service keys}}``."""
    blocks = [f'[aurora]\ninterval = {interval}\ndb = "aurora.db"\nlog_dir = "logs"\n']
    for name, spec in services.items():
        spec = dict(spec)
        script = textwrap.dedent(spec.pop("script"))
        script_path = tmp_path / f"{name}.py"
        script_path.write_text(script)
        lines = [f'[[service]]\nname = "{name}"\ncommand = ["{PY}", "{script_path}"]']
        for key, value in spec.items():
            lines.append(f"{key} = {_toml(value)}")
        blocks.append("\n".join(lines) + "\n")
    text = "\n".join(blocks)
    return parse_config(text, str(tmp_path / "fleet.toml"), base_dir=tmp_path)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


HTTP_SERVICE = """
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else PORT), H).serve_forever()
"""


def http_service(port: int) -> str:
    return textwrap.dedent(HTTP_SERVICE).replace("PORT", str(port))


def squat(port: int) -> subprocess.Popen:
    """A process that is not Aurora's holding ``port`` on 127.0.0.1; it prints 'squatting' once bound."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port})); s.listen()\n"
        "print('squatting', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([PY, "-c", code, "port-squatter"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "squatting"
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


__all__ = ["demo_fleet", "script_fleet", "squat", "stop_process", "free_port", "http_service", "ServiceConfig"]
