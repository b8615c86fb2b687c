"""A bad config names the file, the key and the problem, and exits with status 2."""
from __future__ import annotations

import subprocess
import sys

import pytest

from aurora_tui.cli import main

GOOD_SERVICE = '[[service]]\nname = "web"\ncommand = ["python3", "-m", "http.server"]\nport = 8000\n'

BAD = {
    "syntax": ("[[service]\nname = 'x'", "", "TOML syntax error"),
    "unknown top-level": ("[servers]\nx = 1\n" + GOOD_SERVICE, "servers", "unknown"),
    "unknown service key": (GOOD_SERVICE + "prot = 1\n", "service[1].prot", "did you mean 'port'"),
    "shell string": ('[[service]]\nname = "web"\ncommand = "python3 -m http.server"\n', "service[1].command", "not a shell string"),
    "missing command": ('[[service]]\nname = "web"\n', "service[1].command", "required"),
    "missing name": ('[[service]]\ncommand = ["true"]\n', "service[1].name", "required"),
    "port range": (GOOD_SERVICE.replace("8000", "70000"), "service[1].port", "1 to 65535"),
    "duplicate names": (GOOD_SERVICE + GOOD_SERVICE.replace("8000", "8001"), "service[2].name", "duplicate"),
    "duplicate ports": (GOOD_SERVICE + GOOD_SERVICE.replace('"web"', '"api"'), "service[2].port", "8000"),
    "unknown dependency": (GOOD_SERVICE + 'depends_on = ["db"]\n', "service[1].depends_on", "db"),
    "cycle": (
        '[[service]]\nname = "a"\ncommand = ["true"]\ndepends_on = ["b"]\n[[service]]\nname = "b"\ncommand = ["true"]\ndepends_on = ["a"]\n',
        "depends_on",
        "cycle",
    ),
    "bad interval": ("[aurora]\ninterval = 0\n" + GOOD_SERVICE, "aurora.interval", "must be positive"),
    "bool as number": (GOOD_SERVICE + "stop_timeout = true\n", "service[1].stop_timeout", "boolean"),
    "both health kinds": (GOOD_SERVICE + 'health = { http = "/", tcp = true }\n', "service[1].health", "http"),
    "health without port": ('[[service]]\nname = "w"\ncommand = ["true"]\nhealth = { tcp = true }\n', "service[1].health", "port"),
    "no services": ("[aurora]\ninterval = 5\n", "service", "at least one"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_names_file_key_and_problem(case, tmp_path, capsys):
    text, key, problem = BAD[case]
    path = tmp_path / f"{case.replace(' ', '_')}.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert key in err
    assert problem.lower() in err.lower(), err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_the_real_command_exits_2_on_a_bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_SERVICE.replace("8000", "0"))
    for args in (["--config", str(path)], ["run", "--headless", "--config", str(path)]):
        result = subprocess.run([sys.executable, "-m", "aurora_tui", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert f"{path}: service[1].port: web: must be an integer from 1 to 65535" in result.stderr


def test_bad_interval_on_the_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--headless", "--interval", "0"])
    assert exc.value.code == 2
    assert "must be greater than 0" in capsys.readouterr().err


def test_engine_options_given_before_the_subcommand_stand():
    """`aurora --config F run --headless` once ran the demo fleet: the subcommand's own default None
    overwrote the --config given before it."""
    from pathlib import Path

    from aurora_tui.cli import build_parser

    parser = build_parser()
    before = parser.parse_args(["--config", "fleet.toml", "--db", "a.db", "run", "--headless"])
    assert before.config == Path("fleet.toml") and before.db == Path("a.db")
    after = parser.parse_args(["run", "--headless", "--config", "other.toml"])
    assert after.config == Path("other.toml") and after.db is None
    status = parser.parse_args(["--db", "a.db", "status"])
    assert status.db == Path("a.db") and status.timeout is None
