"""A provider's deadlines and byte limits, from llmcore.yaml to the transport."""

from __future__ import annotations

import pytest
from llmcore import ConfigError
from llmcore.config import parse_config
from llmcore.http import Limits


def limits_of(yaml_section: str) -> Limits:
    cfg = parse_config(f"providers:\n  p:\n    plugin: openai\n{yaml_section}")
    assert cfg.providers is not None
    return Limits.from_config(cfg.providers["p"])


def test_defaults_fail_a_hung_server_over_in_seconds() -> None:
    lim = limits_of("")
    assert (lim.connect, lim.first_token, lim.read, lim.total) == (5.0, 30.0, 30.0, 600.0)
    assert (lim.max_response_bytes, lim.max_line_bytes) == (32 << 20, 1 << 20)


def test_every_deadline_and_limit_can_be_set() -> None:
    lim = limits_of(
        "    timeout: {connect: 1, read: 4, first_token: 9, total: 60}\n"
        "    limits: {max_response_bytes: 1000, max_line_bytes: 100,"
        " retry_after_cap: 5}\n"
    )
    assert (lim.connect, lim.read, lim.first_token, lim.total) == (1, 4, 9, 60)
    assert (lim.max_response_bytes, lim.max_line_bytes, lim.retry_after_cap) == (1000, 100, 5)


def test_first_token_follows_read_when_unset() -> None:
    # Someone who raised read for a slow local model keeps that patience for the first byte.
    assert limits_of("    timeout: {read: 300}\n").first_token == 300


def test_one_number_sets_the_waits_and_keeps_total_at_least_the_default() -> None:
    lim = limits_of("    timeout: 7\n")
    assert (lim.read, lim.first_token, lim.connect, lim.total) == (7, 7, 5, 600)
    assert limits_of("    timeout: 900\n").total == 900


def test_a_request_timeout_replaces_read_and_first_token() -> None:
    lim = limits_of("").for_call(2.5)
    assert (lim.read, lim.first_token, lim.total) == (2.5, 2.5, 600.0)
    assert limits_of("").for_call(float("inf")).read == 30.0


@pytest.mark.parametrize(
    "section",
    [
        "    timeout: {total: -1}\n",
        "    limits: {max_line_bytes: 0}\n",
        "    limits: {max_response_bytes: lots}\n",
        "    limits: {max_bytes: 5}\n",
    ],
)
def test_bad_values_are_config_errors_naming_the_key(section: str) -> None:
    with pytest.raises(ConfigError) as info:
        limits_of(section)
    assert "providers.p" in str(info.value)
