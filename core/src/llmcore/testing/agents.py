"""Helpers for testing agent plugins against their real programs and a scripted fake.

An agent plugin's proof is a run of the real program (``claude``, ``codex``, ...) against a
fake server from :mod:`llmcore.testing.fakes` that scripts the model's side: a tool call that
writes a file, then a final answer. These helpers check what every such test checks, so a
plugin's test module holds only what is particular to its program (its tool names, the
shape of its requests):

* :func:`git_repo` makes a clean repository (files changed are judged by git); the
  ``agent_repo`` fixture of llmcore's pytest plugin is one with a committed ``README.md``.
* :func:`check_run` / :func:`check_resumed` / :func:`run_resumed`: a successful run wrote
  the files, reported usage and a session id; a resumed run kept that session.
* :func:`expect_auth_error`, :func:`expect_timeout`, :func:`expect_connection_error`: the
  failure arrives quickly, with the right :class:`~llmcore.errors.AgentError` subclass, a
  hint, and no API key in its text.
* :class:`RealAgentChecks`: the failure-path tests themselves (refused key, slow server,
  prompt that looks like a flag, server down) as a mixin. Subclass it as ``Test...`` and
  give it ``client`` and ``fake`` fixtures::

      class TestFooFailures(RealAgentChecks):
          agent = "foo"                     # the agent's name in the client
          key, key_env = "sk-test-123", "FOO_TEST_KEY"

  where ``client`` is an :class:`llmcore.Client` whose agent ``foo`` points at ``fake`` with
  ``api_key_env: FOO_TEST_KEY`` (set to ``key`` in the environment).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from ..errors import AgentAuthError, AgentConnectionError, AgentError, AgentTimeoutError
from ..types import AgentResult
from .fakes.base import Reply

__all__ = [
    "RealAgentChecks",
    "check_resumed",
    "check_run",
    "expect_auth_error",
    "expect_connection_error",
    "expect_timeout",
    "git_repo",
    "header",
    "run_resumed",
]

E = TypeVar("E", bound=AgentError)


def git_repo(path: Path, files: Mapping[str, str] | None = None) -> Path:
    """Make ``path`` a git repository with ``files`` committed (default: a ``README.md``).

    Identity and signing are set locally, so it works on a machine with no git config.
    """
    path.mkdir(parents=True, exist_ok=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "llmcore tests")
    git("config", "commit.gpgsign", "false")
    for name, text in (files or {"README.md": "# test repo\n"}).items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    git("add", "-A")
    git("commit", "-q", "-m", "start")
    return path


def header(request: Any, name: str) -> str | None:
    """A header of a request a fake recorded, by case-insensitive ``name``."""
    wanted = name.lower()
    return next((v for k, v in request.headers.items() if k.lower() == wanted), None)


def check_run(
    result: AgentResult,
    *,
    files: list[str],
    output: str | None = None,
    output_contains: str | None = None,
    usage: tuple[int, int] | None = None,
) -> None:
    """A run that did the job: success, exactly ``files`` changed, usage, a session id.

    ``usage`` checks (input, output) tokens exactly; without it both must be > 0.
    """
    assert result.success, result.error
    if output is not None:
        assert result.output == output
    if output_contains is not None:
        assert output_contains in result.output
    assert result.files_modified == files
    assert result.usage is not None
    if usage is not None:
        assert (result.usage.input_tokens, result.usage.output_tokens) == usage
    else:
        assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.session_id
    assert result.exit_code == 0


def check_resumed(
    again: AgentResult,
    first: AgentResult,
    *,
    output: str | None = None,
    output_contains: str | None = None,
) -> None:
    """A resumed run succeeded and stayed in the first run's session."""
    assert again.success, again.error
    if output is not None:
        assert again.output == output
    if output_contains is not None:
        assert output_contains in again.output
    assert again.session_id == first.session_id


def run_resumed(
    client: Any,
    agent: str,
    first: AgentResult,
    fake: Any,
    cwd: Path,
    *,
    answer: str,
    prompt: str = "what did you do?",
    exact: bool = True,
    usage: tuple[int, int] | None = None,
) -> AgentResult:
    """Script ``answer`` on ``fake``, resume ``first``'s session with ``prompt`` and check
    the run succeeded in that session with that answer (the whole output, or within it when
    not ``exact``). Returns the second result; the caller checks the history it sent."""
    fake.push(Reply(text=answer, usage=usage))
    again: AgentResult = client.run_agent(agent, prompt, cwd=cwd, resume=first.session_id)
    if exact:
        check_resumed(again, first, output=answer)
    else:
        check_resumed(again, first, output_contains=answer)
    return again


def _expect(kind: type[E], run: Callable[[], object], within: float) -> E:
    t0 = time.monotonic()
    with pytest.raises(kind) as info:
        run()
    took = time.monotonic() - t0
    assert took < within, f"{kind.__name__} came after {took:.1f}s (limit {within}s)"
    return info.value


def expect_auth_error(
    run: Callable[[], object],
    *,
    key: str,
    key_env: str,
    within: float,
    status_in_message: bool = True,
) -> AgentAuthError:
    """``run()`` raises :class:`AgentAuthError` within ``within`` seconds, its hint names
    ``key_env``, and ``key`` appears in neither its message nor its repr."""
    err = _expect(AgentAuthError, run, within)
    if status_in_message:
        assert "401" in str(err)
    assert key_env in (err.hint or "")
    assert key not in str(err) and key not in repr(err)
    return err


def expect_timeout(run: Callable[[], object], *, within: float) -> AgentTimeoutError:
    """``run()`` raises :class:`AgentTimeoutError` within ``within`` seconds."""
    return _expect(AgentTimeoutError, run, within)


def expect_connection_error(run: Callable[[], object], *, within: float) -> AgentConnectionError:
    """``run()`` raises :class:`AgentConnectionError` quickly, its hint naming ``base_url``."""
    err = _expect(AgentConnectionError, run, within)
    assert "base_url" in (err.hint or "")
    return err


class RealAgentChecks:
    """Failure-path tests for a real agent program against its scripted fake.

    Needs fixtures ``client`` (an :class:`llmcore.Client` with the agent) and ``fake`` (a
    started :class:`~llmcore.testing.fakes.FakeServer` the agent is pointed at), plus
    ``agent_repo`` (llmcore's pytest plugin has one; override it for a repository with
    other files). Tune it with the class attributes; override :meth:`after_auth_error` to
    check more (e.g. that the program did not retry) and :meth:`sent_text` to say where the
    prompt shows up in what the fake received. A program that cannot pass a check drops it
    by setting that test's name to ``None`` in the subclass (say why in a comment).
    """

    #: The agent's name in ``client``.
    agent: ClassVar[str] = ""
    #: The test key and the variable (``api_key_env``) that holds it.
    key: ClassVar[str] = ""
    key_env: ClassVar[str] = ""
    #: The error text the fake sends with its 401, and whether the status must show in
    #: the error message (some programs report only the server's text).
    auth_error_text: ClassVar[str] = "Invalid API key"
    auth_status_in_message: ClassVar[bool] = True
    #: The run timeout of the slow-server test, and the time allowed beyond it to stop.
    timeout_s: ClassVar[float] = 4
    timeout_slack: ClassVar[float] = 8
    #: How soon a refused key or a dead server must be reported.
    fail_within: ClassVar[float] = 30
    #: The mode of the flag-like-prompt run (``None``: the agent's configured mode), and
    #: whether the answer must be the whole output (``False``: contained in it).
    flag_prompt_mode: ClassVar[str | None] = "read_only"
    exact_output: ClassVar[bool] = True

    def after_auth_error(self, err: AgentAuthError, fake: Any) -> None:
        """Extra checks after the refused-key run (default: none)."""

    def sent_text(self, fake: Any) -> str:
        """The text of what the model was sent for the prompt (default: the last request)."""
        return str(fake.requests[-1].body.decode())

    def test_refused_key_fails_fast_with_auth_error(
        self, client: Any, fake: Any, agent_repo: Path
    ) -> None:
        fake.push(Reply(status=401, error=self.auth_error_text))
        err = expect_auth_error(
            lambda: client.run_agent(self.agent, "hi", cwd=agent_repo),
            key=self.key,
            key_env=self.key_env,
            within=self.fail_within,
            status_in_message=self.auth_status_in_message,
        )
        self.after_auth_error(err, fake)

    def test_slow_server_times_out(self, client: Any, fake: Any, agent_repo: Path) -> None:
        fake.push(Reply(delay=max(30, self.timeout_s + self.timeout_slack + 5)))
        expect_timeout(
            lambda: client.run_agent(self.agent, "hi", cwd=agent_repo, timeout=self.timeout_s),
            within=self.timeout_s + self.timeout_slack,
        )

    def test_prompt_that_looks_like_a_flag_is_sent_as_text(
        self, client: Any, fake: Any, agent_repo: Path
    ) -> None:
        fake.push(Reply(text="It is a prompt."))
        result = client.run_agent(
            self.agent, "--version -h", cwd=agent_repo, mode=self.flag_prompt_mode
        )
        assert result.success, result.error
        if self.exact_output:
            assert result.output == "It is a prompt."
        else:
            assert "It is a prompt." in result.output
        assert "--version -h" in self.sent_text(fake)

    def test_server_down_gives_connection_error(
        self, client: Any, fake: Any, agent_repo: Path
    ) -> None:
        fake.stop()
        expect_connection_error(
            lambda: client.run_agent(self.agent, "hi", cwd=agent_repo, timeout=60),
            within=self.fail_within,
        )
