"""Pure tests of aurora_tui.core.config: parsing, defaults, the demo fleet and validation errors."""
from __future__ import annotations

import json
import sys

import platformdirs
import pytest
from hypothesis import HealthCheck as HypHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_tui.core.config import (
    Config,
    ConfigError,
    HealthCheck,
    Limits,
    ServiceConfig,
    Settings,
    demo_config,
    demo_config_text,
    load_config,
    parse_config,
    with_overrides,
)
from aurora_tui.core.config_model import decode_escapes

DEMO_PORTS = {"aurora_ui": 5000, "bridge_api": 5001, "learning_api": 5002, "file_server": 8080}

MINIMAL = """
[[service]]
name = "web"
command = ["python3", "app.py"]
"""


# --------------------------------------------------------------------------- demo fleet


def test_demo_config_parses_and_orders_dependencies():
    config = demo_config()
    assert config.source == "<demo fleet>"
    assert sorted(s.name for s in config.services) == sorted(DEMO_PORTS)
    levels = config.start_levels()
    flat = [name for level in levels for name in level]
    assert sorted(flat) == sorted(DEMO_PORTS)
    level_of = {name: i for i, level in enumerate(levels) for name in level}
    assert level_of["learning_api"] < level_of["bridge_api"]
    assert levels[0] == ["aurora_ui", "file_server", "learning_api"]
    assert config.dependants("learning_api") == ["bridge_api"]
    assert config.dependants("bridge_api") == []
    assert config.settings.interval == 15.0


def test_demo_services_shape():
    config = demo_config()
    for svc in config.services:
        assert svc.command[:3] == (sys.executable, "-m", "aurora_tui.demo.service")
        assert svc.command[3:7] == ("--name", svc.name, "--port", str(svc.port))
        assert svc.health == HealthCheck("http", "/healthz", 200, '"status": "ok"', 2.0)
        assert (svc.start_grace, svc.stop_timeout, svc.restart_delay) == (5.0, 5.0, 0.0)
        assert svc.limits == Limits(256, 90, 80, 200, 150)
        assert svc.managed
    bridge = config.service("bridge_api")
    assert bridge.depends_on == ("learning_api",)
    assert bridge.command[7:] == ("--upstream", "http://127.0.0.1:5002/healthz")


def test_demo_port_offset_shifts_all_ports():
    config = demo_config(port_offset=1234)
    for name, port in DEMO_PORTS.items():
        svc = config.service(name)
        assert svc.port == port + 1234
        assert str(port + 1234) in svc.command
    assert config.service("bridge_api").command[-1] == f"http://127.0.0.1:{5002 + 1234}/healthz"


def test_demo_text_is_standalone_and_escapes_python_path(tmp_path):
    text = demo_config_text(python='C:\\Py "3"\\python.exe')
    assert text.lstrip().startswith("#")
    assert "[aurora]" in text and "interval = 15" in text
    settings_keys = [line.split("=")[0].strip() for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert "db" not in settings_keys and "log_dir" not in settings_keys
    config = parse_config(text, "x.toml", base_dir=tmp_path)
    assert config.service("aurora_ui").command[0] == 'C:\\Py "3"\\python.exe'
    assert config.settings.db == Settings().db


def test_service_lookup_unknown_raises_keyerror():
    with pytest.raises(KeyError):
        demo_config().service("nope")


# --------------------------------------------------------------------------- defaults and paths


def test_defaults():
    config = parse_config(MINIMAL, "mem.toml")
    assert config.settings == Settings()
    assert config.settings.interval == 15.0
    assert config.settings.retention_hours == 24.0
    assert config.settings.db == platformdirs.user_data_path("aurora") / "aurora.db"
    assert config.settings.log_dir == platformdirs.user_log_path("aurora")
    svc = config.service("web")
    assert svc == ServiceConfig(name="web", command=("python3", "app.py"))
    assert svc.health == HealthCheck("none")
    assert svc.limits == Limits()
    assert svc.managed is True
    assert config.start_levels() == [["web"]]


def test_port_without_health_defaults_to_tcp():
    config = parse_config(MINIMAL + "port = 9000\n", "mem.toml")
    assert config.service("web").health == HealthCheck("tcp")


def test_relative_paths_resolve_against_base_dir(tmp_path):
    (tmp_path / "srv").mkdir()
    text = f"""
[aurora]
interval = 0.5
db = "data/aurora.db"
log_dir = "logs"
retention_hours = 2

{MINIMAL}
cwd = "srv"
env = {{ B = "2", A = "1" }}
port = 8000
health = {{ http = "/healthz", expect_body = "ok", timeout = 1 }}
"""
    config = parse_config(text, "mem.toml", base_dir=tmp_path)
    assert config.settings.interval == 0.5
    assert config.settings.retention_hours == 2.0
    assert config.settings.db == tmp_path / "data" / "aurora.db"
    assert config.settings.log_dir == tmp_path / "logs"
    svc = config.service("web")
    assert svc.cwd == str(tmp_path / "srv")
    assert svc.env == (("A", "1"), ("B", "2"))
    assert svc.health == HealthCheck("http", "/healthz", 200, "ok", 1.0)


def test_health_check_grammar(tmp_path):
    def health(line: str, port: bool = True) -> HealthCheck:
        text = MINIMAL + ("port = 8443\n" if port else "") + line + "\n"
        return parse_config(text, "mem.toml", base_dir=tmp_path).service("web").health

    https = health('health = { http = "/healthz", host = "localhost", scheme = "https", verify_tls = false, '
                   'headers = { Host = "www.example.com", X-Token = "s" }, expect_status = [200, "3XX"], expect_body = "ok", timeout = 1 }')
    assert https == HealthCheck("http", "/healthz", (200, "3xx"), "ok", 1.0, host="localhost", scheme="https", verify_tls=False,
                                headers=(("Host", "www.example.com"), ("X-Token", "s")))
    assert https.expects_status(200) and https.expects_status(302) and not https.expects_status(404)
    assert health('health = { http = "/" }').verify_tls is True
    assert health('health = { http = "/", expect_status = "2xx" }').expect_status == "2xx"
    assert health('health = { http = "/", host = "[::1]" }').host == "::1"
    # TOML decodes the escapes of a basic string, Aurora those of a literal one: the same bytes go out.
    basic = health('health = { tcp = true, send = "PING\\r\\n", expect = "+PONG" }')
    literal = health("health = { tcp = true, send = 'PING\\r\\n', expect = '+PONG', host = \"localhost\" }")
    assert basic.send == "PING\r\n" and literal.send == "PING\\r\\n"
    assert decode_escapes(basic.send) == decode_escapes(literal.send) == b"PING\r\n"
    assert decode_escapes("\\x2a1\\r\\n\\\\") == b"*1\r\n\\"
    # An exec check needs no port; its program resolves like a command's.
    pg = health('health = { exec = ["pg_isready", "-h", "127.0.0.1"], timeout = 2 }', port=False)
    assert pg == HealthCheck("exec", timeout=2.0, exec=("pg_isready", "-h", "127.0.0.1"))
    assert health('health = { exec = ["bin/check"] }', port=False).exec == (str(tmp_path / "bin" / "check"),)


def test_health_checks_survive_the_stored_json(tmp_path):
    """Rollback rebuilds a service's config from the JSON it was stored as (older rows lack new keys)."""
    from aurora_tui.core.records import config_from_key, config_key

    text = MINIMAL + 'port = 80\nhealth = { http = "/", expect_status = [200, "3xx"], headers = { Host = "x" }, scheme = "https" }\n'
    lines = [text, MINIMAL + 'health = { exec = ["pg_isready", ""] }\n', MINIMAL + 'port = 80\nhealth = { tcp = true, send = "P\\r\\n", expect = "+P" }\n']
    for text in lines:
        svc = parse_config(text, "mem.toml", base_dir=tmp_path).service("web")
        again = config_from_key(config_key(svc))
        assert again == svc and hash(again) == hash(svc)
    old = json.loads(config_key(svc))
    old["health"] = {"kind": "http", "path": "/", "expect_status": 200, "expect_body": None, "timeout": 2.0}
    assert config_from_key(json.dumps(old)).health == HealthCheck("http", "/")


def test_load_config_uses_file_directory(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text('[aurora]\ndb = "a.db"\n' + MINIMAL)
    config = load_config(path)
    assert config.source == str(path)
    assert config.settings.db == tmp_path / "a.db"


def test_load_config_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.file == str(missing)
    assert info.value.problems[0][0] == ""
    assert "cannot read" in info.value.problems[0][1]
    assert str(missing) in str(info.value)


def test_levels_and_dependants():
    text = """
[[service]]
name = "c"
command = ["x"]
depends_on = ["a", "b"]
[[service]]
name = "b"
command = ["x"]
depends_on = ["a"]
[[service]]
name = "a"
command = ["x"]
[[service]]
name = "d"
command = ["x"]
"""
    config = parse_config(text, "mem.toml")
    assert config.start_levels() == [["a", "d"], ["b"], ["c"]]
    assert config.dependants("a") == ["b", "c"]


def test_unmanaged_service_may_omit_command():
    config = parse_config('[[service]]\nname = "db"\nport = 5432\nmanaged = false\n', "mem.toml")
    svc = config.service("db")
    assert svc.managed is False and svc.command == () and svc.health == HealthCheck("tcp")


def test_with_overrides(tmp_path):
    config = parse_config(MINIMAL, "mem.toml")
    assert with_overrides(config) == config
    changed = with_overrides(config, db=tmp_path / "x.db", interval=0.25)
    assert changed.settings.db == tmp_path / "x.db"
    assert changed.settings.interval == 0.25
    assert changed.services == config.services
    assert config.settings.interval == 15.0  # original untouched
    with pytest.raises(ConfigError):
        with_overrides(config, interval=0)


def test_error_str_format():
    err = ConfigError("f.toml", [("service[1].port", "bad"), ("", "syntax")])
    assert str(err).splitlines() == ["f.toml: service[1].port: bad", "f.toml: syntax"]


def test_all_problems_are_collected():
    text = """
[aurora]
interval = 0
[[service]]
name = "a"
command = "python3 app.py"
port = 70000
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "multi.toml")
    keys = [k for k, _ in info.value.problems]
    assert keys == ["aurora.interval", "service[1].command", "service[1].port"]
    assert all(line.startswith("multi.toml: ") for line in str(info.value).splitlines())


# --------------------------------------------------------------------------- bad configs


def svc(name: str = "a", extra: str = "", port: int | None = None) -> str:
    lines = ["[[service]]", f'name = "{name}"', 'command = ["python3", "app.py"]']
    if port is not None:
        lines.append(f"port = {port}")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


BAD = [
    ("syntax", "[[service]\nname = 1\n", "", "line 1"),
    ("unknown_top", "[servce]\nx = 1\n" + svc(), "servce", "did you mean 'service'"),
    ("unknown_aurora_key", "[aurora]\nintervall = 3\n" + svc(), "aurora.intervall", "did you mean 'interval'"),
    ("unknown_service_key", svc("bridge_api", "prot = 5001"), "service[1].prot", "bridge_api: unknown key 'prot'; did you mean 'port'?"),
    ("unknown_health_key", svc(port=1, extra='health = { http = "/", timout = 1 }'), "service[1].health.timout", "did you mean 'timeout'"),
    ("unknown_limits_key", svc(extra="limits = { memroy_mb = 1 }"), "service[1].limits.memroy_mb", "did you mean 'memory_mb'"),
    ("interval_bool", "[aurora]\ninterval = true\n" + svc(), "aurora.interval", "must be a number, got boolean true"),
    ("interval_zero", "[aurora]\ninterval = 0\n" + svc(), "aurora.interval", "positive"),
    ("interval_string", '[aurora]\ninterval = "15"\n' + svc(), "aurora.interval", "must be a number"),
    ("retention_negative", "[aurora]\nretention_hours = -1\n" + svc(), "aurora.retention_hours", "positive"),
    ("db_not_string", "[aurora]\ndb = 3\n" + svc(), "aurora.db", "must be a string"),
    ("missing_name", '[[service]]\ncommand = ["x"]\n', "service[1].name", "missing required key 'name'"),
    ("invalid_name", svc("9lives"), "service[1].name", "must match"),
    ("name_with_space", svc("a b"), "service[1].name", "must match"),
    ("missing_command", '[[service]]\nname = "a"\n', "service[1].command", "missing required key 'command'"),
    ("shell_command", '[[service]]\nname = "a"\ncommand = "python3 app.py"\n', "service[1].command", "not a shell string"),
    ("empty_command", '[[service]]\nname = "a"\ncommand = []\n', "service[1].command", "must not be empty"),
    # An empty argument is fine (redis's `--save ""`); one no program can receive is not.
    ("nul_arg", '[[service]]\nname = "a"\ncommand = ["python3", "a\\u0000b"]\n', "service[1].command[1]", "NUL character"),
    ("non_string_arg", '[[service]]\nname = "a"\ncommand = ["python3", 1]\n', "service[1].command[1]", "must be a string"),
    ("duplicate_name", svc("a") + svc("a"), "service[2].name", "duplicate name 'a'"),
    ("duplicate_port", svc("a", port=5001) + svc("b", port=5001), "service[2].port", "b: port 5001 is already used by a"),
    ("port_range", svc("x") + svc("bridge_api", port=70000), "service[2].port", "bridge_api: must be an integer from 1 to 65535, got 70000"),
    ("port_zero", svc(port=0), "service[1].port", "from 1 to 65535"),
    ("port_bool", svc(extra="port = true"), "service[1].port", "got boolean true"),
    ("port_float", svc(port=80.5), "service[1].port", "must be an integer"),  # type: ignore[arg-type]
    ("health_both", svc(port=1, extra='health = { http = "/", tcp = true }'), "service[1].health", "not both"),
    ("health_neither", svc(port=1, extra="health = { timeout = 1 }"), "service[1].health", "http"),
    ("health_path", svc(port=1, extra='health = { http = "healthz" }'), "service[1].health.http", 'starting with "/"'),
    ("health_no_port", svc(extra='health = { http = "/healthz" }'), "service[1].health", "needs a port"),
    ("health_status", svc(port=1, extra='health = { http = "/", expect_status = 700 }'), "service[1].health.expect_status", "from 100 to 599"),
    ("health_timeout", svc(port=1, extra='health = { http = "/", timeout = 0 }'), "service[1].health.timeout", "positive"),
    ("health_tcp_timeout_neg", svc(port=1, extra="health = { tcp = true, timeout = -1 }"), "service[1].health.timeout", "positive"),
    ("health_string", svc(port=1, extra='health = "/healthz"'), "service[1].health", "must be a table"),
    ("health_exec_and_http", svc(port=1, extra='health = { http = "/", exec = ["pg_isready"] }'), "service[1].health", "not both http and exec"),
    ("health_exec_shell", svc(extra='health = { exec = "pg_isready -h db" }'), "service[1].health.exec", "not a shell string"),
    ("health_exec_empty", svc(extra="health = { exec = [] }"), "service[1].health.exec", "must not be empty"),
    ("health_exec_host", svc(extra='health = { exec = ["pg_isready"], host = "db" }'), "service[1].health.host", "only applies to http and tcp health checks"),
    ("health_tcp_no_port", svc(extra="health = { tcp = true }"), "service[1].health", "a tcp health check needs a port"),
    ("health_status_list_item", svc(port=1, extra='health = { http = "/", expect_status = [200, 700] }'), "service[1].health.expect_status[1]", "from 100 to 599"),
    ("health_status_empty_list", svc(port=1, extra='health = { http = "/", expect_status = [] }'), "service[1].health.expect_status", "at least one status"),
    ("health_status_class", svc(port=1, extra='health = { http = "/", expect_status = "2xy" }'), "service[1].health.expect_status", 'a class such as "2xx", got string'),
    ("health_status_tcp", svc(port=1, extra="health = { tcp = true, expect_status = 200 }"), "service[1].health.expect_status", "only applies to http health checks"),
    ("health_scheme", svc(port=1, extra='health = { http = "/", scheme = "ftp" }'), "service[1].health.scheme", 'must be "http" or "https"'),
    ("health_verify_without_https", svc(port=1, extra='health = { http = "/", verify_tls = false }'), "service[1].health.verify_tls", 'add scheme = "https"'),
    ("health_verify_not_bool", svc(port=1, extra='health = { http = "/", scheme = "https", verify_tls = "no" }'), "service[1].health.verify_tls", "must be true or false"),
    ("health_host_url", svc(port=1, extra='health = { http = "/", host = "http://db:80" }'), "service[1].health.host", "no scheme, port or path"),
    ("health_host_empty", svc(port=1, extra='health = { tcp = true, host = "" }'), "service[1].health.host", "must not be empty"),
    ("health_headers_string", svc(port=1, extra='health = { http = "/", headers = "X-Token: s" }'), "service[1].health.headers", "must be a table of strings"),
    ("health_header_value", svc(port=1, extra='health = { http = "/", headers = { X-Token = 5 } }'), "service[1].health.headers.X-Token", "must be a string, got integer 5"),
    ("health_header_newline", svc(port=1, extra='health = { http = "/", headers = { X-Token = "a\\nb" } }'), "service[1].health.headers.X-Token", "line break"),
    ("health_header_own", svc(port=1, extra='health = { http = "/", headers = { Connection = "keep-alive" } }'), "service[1].health.headers.Connection", "set by the check itself"),
    ("health_header_name", svc(port=1, extra='health = { http = "/", headers = { "X Token" = "s" } }'), "service[1].health.headers.X Token", "not a valid HTTP header name"),
    ("health_send_without_expect", svc(port=1, extra='health = { tcp = true, send = "PING" }'), "service[1].health.send", "needs expect"),
    ("health_send_bad_escape", svc(port=1, extra="health = { tcp = true, send = 'PING\\q', expect = '+PONG' }"), "service[1].health.send", 'unknown escape "\\q"'),
    ("health_send_empty", svc(port=1, extra='health = { tcp = true, send = "", expect = "+PONG" }'), "service[1].health.send", "must not be empty"),
    ("health_expect_http", svc(port=1, extra='health = { http = "/", expect = "ok" }'), "service[1].health.expect", "only applies to tcp health checks"),
    ("health_body_tcp", svc(port=1, extra='health = { tcp = true, expect_body = "ok" }'), "service[1].health.expect_body", "only applies to http health checks"),
    ("stop_timeout_zero", svc(extra="stop_timeout = 0"), "service[1].stop_timeout", "positive"),
    ("start_grace_negative", svc(extra="start_grace = -1"), "service[1].start_grace", ">= 0"),
    ("restart_delay_negative", svc(extra="restart_delay = -0.1"), "service[1].restart_delay", ">= 0"),
    ("restart_delay_nan", svc(extra="restart_delay = nan"), "service[1].restart_delay", "finite"),
    ("limits_negative", svc(extra="limits = { memory_mb = -5 }"), "service[1].limits.memory_mb", "positive"),
    ("limits_fds_over", svc(extra="limits = { fds_percent = 101 }"), "service[1].limits.fds_percent", "at most 100"),
    ("limits_cpu_over", svc(extra="limits = { cpu_percent = 6401 }"), "service[1].limits.cpu_percent", "at most 6400"),
    ("limits_threads_float", svc(extra="limits = { threads = 2.5 }"), "service[1].limits.threads", "positive integer"),
    ("limits_bool", svc(extra="limits = { connections = true }"), "service[1].limits.connections", "got boolean"),
    ("unknown_dependency", svc("a", 'depends_on = ["lerning_api"]') + svc("learning_api"), "service[1].depends_on", "unknown service 'lerning_api'; did you mean 'learning_api'?"),
    ("self_dependency", svc("a", 'depends_on = ["a"]'), "service[1].depends_on", "a: cannot depend on itself"),
    ("cycle", svc("a", 'depends_on = ["b"]') + svc("b", 'depends_on = ["a"]'), "service[1].depends_on", "a -> b -> a"),
    ("cycle3", svc("c", 'depends_on = ["a"]') + svc("a", 'depends_on = ["b"]') + svc("b", 'depends_on = ["c"]'), "service[1].depends_on", "c -> a -> b -> c"),
    ("depends_string", svc("a", 'depends_on = "b"'), "service[1].depends_on", "must be an array"),
    ("cwd_missing", svc(extra='cwd = "does/not/exist"'), "service[1].cwd", "not an existing directory"),
    ("env_not_string", svc(extra="env = { PORT = 5001 }"), "service[1].env.PORT", "must be a string, got integer 5001"),
    ("managed_not_bool", svc(extra='managed = "yes"'), "service[1].managed", "must be true or false"),
    ("no_services", "[aurora]\ninterval = 15\n", "service", "at least one [[service]] is required"),
    ("empty_service_array", "service = []\n", "service", "at least one [[service]] is required"),
    ("service_table", '[service]\nname = "a"\ncommand = ["x"]\n', "service", "array of tables"),
    ("service_not_table", "service = [1, 2]\n", "service[1]", "must be a table"),
    ("aurora_not_table", "aurora = 3\n" + svc(), "aurora", "must be a table"),
]


@pytest.mark.parametrize(("text", "key", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config(text, key, fragment, tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.toml", base_dir=tmp_path)
    err = info.value
    assert err.file == "bad.toml"
    matching = [problem for k, problem in err.problems if k == key]
    assert matching, f"no problem for key {key!r}: {err.problems}"
    assert any(fragment in problem for problem in matching), f"{fragment!r} not in {matching}"
    for line in str(err).splitlines():
        assert line.startswith("bad.toml: ")
    if key:
        assert f"bad.toml: {key}: " in str(err)


def test_syntax_error_has_line_and_column():
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + "port = \n", "bad.toml")
    ((key, problem),) = info.value.problems
    assert key == ""
    assert "line 5" in problem and "column" in problem


# --------------------------------------------------------------------------- fuzzing

_toml_ish = st.text(
    alphabet=st.sampled_from(list('[]{}="\',.\n -_0123456789abcdefghilmnoprstuvwxyz#/\\:+etruefals')),
    max_size=120,
)
_fragments = st.lists(
    st.sampled_from(
        [
            "[aurora]\n", "[[service]]\n", "[service]\n", 'name = "a"\n', 'name = "b"\n', "name = 3\n",
            'command = ["x"]\n', 'command = "x y"\n', "command = []\n", "port = 5000\n", "port = 0\n",
            "port = true\n", 'health = { http = "/h" }\n', "health = { tcp = true, http = 1 }\n",
            'depends_on = ["a"]\n', 'depends_on = ["b"]\n', "interval = -1\n", "interval = inf\n",
            'cwd = "."\n', "env = { A = 1 }\n", "limits = { threads = 0, cpu_percent = 1e400 }\n",
            "managed = false\n", 'db = "x.db"\n', "retention_hours = 1979-05-27\n", "x = [[1], {a=1}]\n",
            "start_grace = 99999999999999999999999999999999999999999999\n",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HypHealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), _toml_ish, _fragments))
def test_parse_config_never_crashes(text):
    try:
        result = parse_config(text, "fuzz.toml")
    except ConfigError as err:
        assert err.file == "fuzz.toml"
        assert err.problems
        assert str(err)
    else:
        assert isinstance(result, Config)
        assert result.services
