"""Validation at startup: hostile or mistaken config is refused by `Client()` and
`llmcore config validate` with file, line and key path (exit 2, never a traceback), and
request values are checked before any network call."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from llmcore.client import Client
from llmcore.config import load_config, parse_config
from llmcore.errors import BadRequestError, ConfigError
from llmcore.testing.fakes.openai import OpenAIFake

ALIAS_BOMB = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
""")


def _validate(tmp_path: Path, text: str | bytes) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "llmcore.yaml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    else:
        cfg.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "llmcore", "--config", str(cfg), "config", "validate"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def _assert_config_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    for n in needles:
        assert n in out.stderr, out.stderr


def test_an_alias_bomb_is_refused_at_once_with_a_clear_message(tmp_path: Path) -> None:
    out = _validate(tmp_path, ALIAS_BOMB)
    _assert_config_error(out, "llmcore.yaml:6: f:", "expands to more than 100000 values", "aliases")
    with pytest.raises(ConfigError, match="expands to more than"):
        parse_config(ALIAS_BOMB)


def test_anchors_and_aliases_still_work_within_the_bound() -> None:
    cfg = parse_config(
        textwrap.dedent("""\
        providers:
          a: &base {plugin: openai, base_url: 'http://127.0.0.1:1', models: [m1]}
          b: *base
    """)
    )
    assert cfg.providers is not None and cfg.providers["b"].models == ["m1"]


def test_a_huge_config_file_is_refused_before_parsing(tmp_path: Path) -> None:
    text = "routing: {strategy: priority}\n" + "# padding\n" * 300_000
    out = _validate(tmp_path, text)
    _assert_config_error(out, "llmcore.yaml", "at most 1048576 are read")


def test_invalid_utf8_and_complex_keys_are_config_errors_with_a_line(tmp_path: Path) -> None:
    out = _validate(tmp_path, b"routing:\n  strategy: priority\n  prefer: \xff\xfe\n")
    _assert_config_error(out, "llmcore.yaml:3:", "not valid UTF-8")
    out = _validate(tmp_path, "routing:\n  ? [a, b]\n  : 1\n")
    _assert_config_error(out, "llmcore.yaml:2:", "a key must be a plain name")
    out = _validate(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr


def test_the_config_is_parsed_once_per_cli_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmcore.config as config_mod
    from llmcore.cli import main

    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("routing: {state: memory}\nmetrics: {sinks: []}\n")
    calls: list[str] = []
    real = config_mod._load_yaml

    def counting(text: str, source: str | None) -> Any:
        calls.append(str(source))
        return real(text, source)

    monkeypatch.setattr(config_mod, "_load_yaml", counting)
    monkeypatch.setattr(sys, "argv", ["llmcore"])
    with pytest.raises(SystemExit) as info:
        main(["--config", str(cfg), "config", "validate"])
    assert info.value.code == 0
    assert calls == [str(cfg)]


@pytest.mark.parametrize(
    "env,text,expected",
    [
        ({"ON": "false"}, "routing: {fallback: '${ON}'}", ("routing", "fallback", False)),
        ({"MAXC": "120"}, "routing: {max_cooldown: '${MAXC}'}", ("routing", "max_cooldown", 120.0)),
        (
            {"N": "5"},
            "routing: {cooldown: {failure_threshold: '${N}'}}",
            ("routing.cooldown", "failure_threshold", 5),
        ),
    ],
)
def test_env_variables_are_typed_by_the_field_they_fill(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], text: str, expected: tuple[str, str, Any]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = parse_config(text)
    obj: Any = cfg
    for part in expected[0].split("."):
        obj = getattr(obj, part)
    got = getattr(obj, expected[1])
    assert got == expected[2] and type(got) is type(expected[2])


def test_env_values_that_do_not_fit_the_field_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ON", "maybe")
    with pytest.raises(ConfigError, match=r"routing\.fallback: expected true or false") as info:
        parse_config("routing:\n  fallback: ${ON}\n", source="x.yaml")
    assert info.value.line == 2 and info.value.file == "x.yaml"
    monkeypatch.setenv("T", "12.5")
    cfg = parse_config(
        "providers:\n  a: {plugin: openai, base_url: 'http://127.0.0.1:1', timeout: '${T}'}\n"
    )
    assert cfg.providers is not None and cfg.providers["a"].timeout.read == 12.5
    monkeypatch.setenv("NAME", "true")  # a string field keeps the text
    cfg = parse_config("routing: {state: 'file:/tmp/${NAME}.json'}")
    assert cfg.routing.state == "file:/tmp/true.json" and type(cfg.routing.state) is str


@pytest.mark.parametrize(
    "text,where,what",
    [
        ("metrics: {sinks: sqlite}", "metrics.sinks", "expected a list, got a string 'sqlite'"),
        (
            "routing: {cooldown: {rate_limit_seconds: .inf}}",
            "routing.cooldown.rate_limit_seconds",
            "finite",
        ),
        ("routing: {max_cooldown: .nan}", "routing.max_cooldown", "finite"),
        ("routing: {max_cooldown: 0}", "routing.max_cooldown", "must be positive"),
        (
            "providers: {a: {plugin: openai, base_url: 'http://127.0.0.1:1', timeout: .inf}}",
            "providers.a.timeout",
            "finite",
        ),
        (
            "providers: {a: {plugin: openai, base_url: 'http://127.0.0.1:1', "
            "timeout: {read: .inf}}}",
            "providers.a.timeout",
            "finite",
        ),
        ("agents: {x: {plugin: aider, timeout: .inf}}", "agents.x.timeout", "finite"),
        ("routing: {state: 'zookeeper://x'}", "routing.state", "unknown routing.state"),
    ],
)
def test_values_out_of_type_or_range_are_refused(text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="llmcore.yaml")
    assert where in str(info.value) and what in str(info.value), str(info.value)
    assert info.value.line == 1


def _client(text: str) -> Client:
    return Client(parse_config(text, source="llmcore.yaml"))


def test_plugin_types_options_and_sinks_are_checked_by_client_not_at_the_first_request() -> None:
    with pytest.raises(
        ConfigError,
        match=r"providers\.a\.plugin: unknown plugin 'opnai'.*"
        r"did you mean openai",
    ):
        _client("providers: {a: {plugin: opnai}}\nagents: {}\nmetrics: {sinks: []}")
    with pytest.raises(ConfigError, match=r"providers\.a\.verify_sl: unknown key"):
        _client(
            "providers: {a: {plugin: openai, base_url: 'http://127.0.0.1:1', "
            "verify_sl: false}}\nagents: {}\nmetrics: {sinks: []}"
        )
    with pytest.raises(
        ConfigError,
        match=r"metrics\.sinks\.0: unknown sink 'sqlit', "
        r"did you mean sqlite",
    ):
        _client("providers: {}\nagents: {}\nmetrics: {sinks: [sqlit]}")
    with pytest.raises(
        ConfigError,
        match=r"metrics\.sqlite\.pth: unknown key, did you mean "
        r"path",
    ):
        _client("providers: {}\nagents: {}\nmetrics: {sinks: [sqlite], sqlite: {pth: x}}")
    with pytest.raises(ConfigError, match=r"metrics\.sqlte: unknown key, did you mean sqlite"):
        _client("providers: {}\nagents: {}\nmetrics: {sinks: [], sqlte: {path: x}}")


def test_an_unset_api_key_env_is_an_error_for_a_remote_provider_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_FOR_TEST", raising=False)
    with pytest.raises(ConfigError) as info:
        _client(
            "providers: {groq: {plugin: openai, base_url: 'https://api.groq.com/openai/v1',"
            " api_key_env: NO_SUCH_KEY_FOR_TEST}}\nagents: {}\nmetrics: {sinks: []}"
        )
    text = str(info.value)
    assert (
        "providers.groq.api_key_env: environment variable NO_SUCH_KEY_FOR_TEST is not set" in text
        and "llmcore.yaml:1:" in text
        and "enabled: false" in text
    )
    # A local server needs no key: naming a variable that is unset is fine there.
    _client(
        "providers: {local: {plugin: openai, base_url: 'http://127.0.0.1:8080/v1', "
        "api_key_env: NO_SUCH_KEY_FOR_TEST}}\nagents: {}\nmetrics: {sinks: []}"
    ).close()
    # ... and so is a disabled remote one.
    _client(
        "providers: {groq: {plugin: openai, base_url: 'https://api.groq.com/openai/v1',"
        " api_key_env: NO_SUCH_KEY_FOR_TEST, enabled: false}}\nagents: {}\n"
        "metrics: {sinks: []}"
    ).close()


@pytest.mark.parametrize(
    "kwargs,what",
    [
        ({"temperature": -3}, "temperature=-3"),
        ({"temperature": float("nan")}, "temperature=nan"),
        ({"max_tokens": -10}, "max_tokens=-10"),
        ({"top_p": 7}, "top_p=7"),
        ({"timeout": float("inf")}, "timeout=inf"),
        ({"stop": "END"}, "stop='END'"),
    ],
)
def test_request_values_are_checked_before_any_network_call(
    kwargs: dict[str, Any], what: str
) -> None:
    with OpenAIFake() as fake:
        client = _client(
            f"providers: {{f: {{plugin: openai, base_url: '{fake.base_url}', "
            "api_key: k-test-1234, models: [m1]}}\nagents: {}\n"
            "metrics: {sinks: []}\nrouting: {state: memory}"
        )
        with pytest.raises(BadRequestError, match=what):
            client.chat("hi", **kwargs)
        with pytest.raises(BadRequestError, match="no messages"):
            client.chat([])
        assert fake.requests == []  # nothing went out
        assert client.chat("hi", temperature=0.2, max_tokens=5).content
        client.close()


def test_load_config_with_cache_reads_a_changed_file_again(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("routing: {strategy: priority}\n")
    assert load_config(cfg, cache=True).routing.strategy == "priority"
    cfg.write_text("routing: {strategy: latency}   \n")
    assert load_config(cfg, cache=True).routing.strategy == "latency"
