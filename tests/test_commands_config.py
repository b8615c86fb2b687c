"""Commands as real servers need them (issue 10, item 3): any argv element, relative programs found next
to the config file, and check-config saying whether the program exists."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import psutil
import pytest

from aurora_tui.cli import main
from aurora_tui.core.config import ConfigError, load_config, parse_config
from aurora_tui.core.engine import Engine

from .helpers import async_wait_until


def service(command: str, name: str = "web", extra: str = "") -> str:
    return f'[[service]]\nname = "{name}"\ncommand = {command}\n{extra}'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def program(path: Path) -> Path:
    """A real executable script that runs until it is stopped."""
    write(path, f"#!{sys.executable}\nimport time\nprint('up', flush=True)\ntime.sleep(600)\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_an_argument_may_be_empty_or_hold_spaces(tmp_path):
    config = parse_config(service('["redis-server", "--save", "", "--requirepass", "two words"]'), "f.toml", tmp_path)
    assert config.services[0].command == ("redis-server", "--save", "", "--requirepass", "two words")


@pytest.mark.parametrize(
    "command, key, problem",
    [
        ('["", "x"]', "service[1].command[0]", "must not be blank"),
        ('["  "]', "service[1].command[0]", "must not be blank"),
    ],
)
def test_a_blank_program_name_is_still_refused(tmp_path, command, key, problem):
    with pytest.raises(ConfigError) as exc:
        parse_config(service(command), "f.toml", tmp_path)
    assert any(k == key and problem in p for k, p in exc.value.problems), exc.value.problems


def test_a_relative_program_resolves_against_the_config_files_directory(tmp_path, monkeypatch):
    conf = tmp_path / "etc" / "fleet.toml"
    write(conf, service('["./bin/app", "-v"]', "a") + service('["bin/app"]', "b") + service('["~/bin/app"]', "c")
          + service('["redis-server"]', "d") + service('["/usr/bin/env", "x"]', "e"))
    monkeypatch.chdir(tmp_path)  # somewhere else: the config's directory decides, not the current one
    commands = {svc.name: svc.command for svc in load_config(Path("etc/fleet.toml")).services}
    assert commands["a"] == (str(tmp_path / "etc" / "bin" / "app"), "-v")
    assert commands["b"] == (str(tmp_path / "etc" / "bin" / "app"),)
    assert commands["c"] == (str(Path.home() / "bin" / "app"),)
    assert commands["d"] == ("redis-server",)  # a bare name is looked up on PATH when it starts
    assert commands["e"] == ("/usr/bin/env", "x")


async def test_the_engine_runs_a_relative_program_from_the_config_files_directory(tmp_path, monkeypatch):
    program(tmp_path / "conf" / "bin" / "app")
    conf = write(tmp_path / "conf" / "fleet.toml", '[aurora]\ndb = "aurora.db"\nlog_dir = "logs"\n' + service('["./bin/app", ""]', "app"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    async with Engine(load_config(conf)) as engine:
        engine.launch()
        runner = engine.fleet.runners["app"]
        await async_wait_until(lambda: runner.alive and "up" in runner.sink.tail(5), what="the program's output")
        assert psutil.Process(runner.pid).cmdline()[1:] == [str(tmp_path / "conf" / "bin" / "app"), ""]


def test_check_config_refuses_a_program_path_that_does_not_exist(tmp_path, capsys):
    conf = write(tmp_path / "fleet.toml", service('["./bin/missing"]') + service('["/nonexistent/aurora-app"]', "api"))
    assert main(["check-config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert f"{conf}: service[1].command[0]: web: no such file: {str(tmp_path / 'bin' / 'missing')!r}" in err
    assert f"{conf}: service[2].command[0]: api: no such file: '/nonexistent/aurora-app'" in err


def test_check_config_refuses_a_path_that_is_not_a_program(tmp_path, capsys):
    write(tmp_path / "bin" / "notes.txt", "not a program\n")
    conf = write(tmp_path / "fleet.toml", service('["bin/notes.txt"]') + service('["bin"]', "api"))
    assert main(["check-config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "service[1].command[0]: web: not executable" in err
    # A bare name is looked up on PATH, so "bin" is only a warning here.
    assert "service[2].command[0]: warning: api: 'bin' is not on PATH" in err


def test_check_config_warns_about_a_bare_name_not_on_path_and_accepts_the_file(tmp_path, capsys, monkeypatch):
    program(tmp_path / "tools" / "found-here")
    monkeypatch.setenv("PATH", str(tmp_path / "tools"))
    conf = write(
        tmp_path / "fleet.toml",
        service('["aurora-no-such-program", "--save", ""]')
        + service('["found-here"]', "api")
        + service('["only-in-its-own-path"]', "own", f'env = {{ PATH = "{tmp_path / "own"}" }}\n'),
    )
    program(tmp_path / "own" / "only-in-its-own-path")
    assert main(["check-config", str(conf)]) == 0
    out, err = capsys.readouterr()
    assert f"{conf}: ok (3 services, 3 managed, 1 warning)" in out
    assert err.strip() == (
        f"{conf}: service[1].command[0]: warning: web: 'aurora-no-such-program' is not on PATH (it is looked up again at each start)"
    )


def test_a_monitor_only_service_has_no_program_to_check(tmp_path, capsys):
    conf = write(tmp_path / "fleet.toml", service('["./not-here"]', extra="managed = false\nport = 6379\n"))
    # managed = false may also need a way to find the process (issue 10, item 2): only the program matters here.
    main(["check-config", str(conf)])
    assert "not-here" not in capsys.readouterr().err


def test_a_program_that_exists_passes_without_a_word(tmp_path, capsys, monkeypatch):
    program(tmp_path / "bin" / "app")
    conf = write(tmp_path / "fleet.toml", service('["bin/app"]') + service(f'["{os.path.basename(sys.executable)}", "-V"]', "py"))
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    assert main(["check-config", str(conf)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.strip() == f"{conf}: ok (2 services, 2 managed)"
