"""The values that cross llmcore's API: requests, responses, chunks, agent tasks and results.

All are attrs classes with ``to_dict()`` giving plain JSON-ready data.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

Role = Literal["system", "user", "assistant", "tool"]
AgentMode = Literal["read_only", "suggest", "auto_edit", "full_auto"]
AGENT_MODES: tuple[str, ...] = ("read_only", "suggest", "auto_edit", "full_auto")


def _to_dict(obj: Any) -> dict[str, Any]:
    return attrs.asdict(obj, recurse=True, filter=lambda a, v: not a.name.startswith("_"))


@attrs.define
class Message:
    role: str
    content: str = ""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    images: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in _to_dict(self).items() if v is not None}


def as_messages(messages: str | list[Message] | list[dict[str, Any]]) -> list[Message]:
    """Accept a prompt string, Messages, or OpenAI-style dicts; return Messages."""
    if isinstance(messages, str):
        return [Message("user", messages)]
    out: list[Message] = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, dict):
            out.append(Message(**m))
        else:
            raise TypeError(f"a message must be a Message or a dict, not {type(m).__name__}")
    return out


@attrs.define
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        d = _to_dict(self)
        d["total_tokens"] = self.total_tokens
        return d


@attrs.define
class ChatRequest:
    """One model call. ``extra`` is passed to the server untouched."""

    messages: list[Message]
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    stream: bool = False
    timeout: float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@attrs.define
class Attempt:
    """One try of one candidate, as the router saw it."""

    provider: str
    model: str | None = None
    ok: bool = False
    error_type: str | None = None
    status: int | None = None
    message: str = ""
    hint: str | None = None
    duration_s: float = 0.0
    skipped: bool = False
    retry: int = 0
    cooldown_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@attrs.define
class ChatResponse:
    content: str
    model: str | None = None
    provider: str | None = None
    usage: Usage = attrs.field(factory=Usage)
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    thinking: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    cost_usd: float | None = None
    attempts: list[Attempt] = attrs.field(factory=list)
    raw: Any = attrs.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = _to_dict(self)
        d.pop("raw", None)
        d["usage"] = self.usage.to_dict()
        return d


@attrs.define
class StreamChunk:
    """A piece of a streamed answer. The last chunk carries ``finish_reason`` and ``usage``."""

    content: str = ""
    thinking: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None
    model: str | None = None
    provider: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@attrs.define
class EmbeddingResponse:
    vectors: list[list[float]]
    model: str | None = None
    provider: str | None = None
    usage: Usage = attrs.field(factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@attrs.define
class ModelInfo:
    name: str
    provider: str | None = None
    context_length: int | None = None
    capabilities: list[str] = attrs.field(factory=list)
    parameter_size: str | None = None
    quantization: str | None = None
    family: str | None = None
    loaded: bool | None = None
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@attrs.define
class AgentTask:
    """What to ask an agent and how: the runner's input."""

    prompt: str
    cwd: str
    mode: str = "suggest"
    model: str | None = None
    resume: str | None = None
    timeout: float | None = None
    args: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    #: The run's id (names its log, branch and worktree); the runner makes one when unset.
    run_id: str | None = None
    #: ``worktree`` or ``none`` for this run only (default: the agent's ``isolation``).
    isolation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@attrs.define
class AgentResult:
    agent: str
    success: bool
    output: str = ""
    files_modified: list[str] = attrs.field(factory=list)
    duration_s: float = 0.0
    exit_code: int | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    session_id: str | None = None
    events: int = 0
    error: str | None = None
    model: str | None = None
    log_path: str | None = None
    #: With ``isolation: worktree``: the git worktree the agent worked in (the checkout is
    #: untouched).
    worktree: str | None = None
    #: The run's id: ``llmcore agent merge RUN`` / ``Client.merge_run`` take it.
    run_id: str | None = None
    #: With ``isolation: worktree``: the run's branch (``llmcore/<agent>/<run id>``) and its
    #: diff against the commit it started from.
    branch: str | None = None
    diff: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = _to_dict(self)
        d["usage"] = self.usage.to_dict() if self.usage else None
        return d


@attrs.define
class Health:
    """The answer of one health probe."""

    ok: bool
    latency_s: float | None = None
    version: str | None = None
    detail: str = ""
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)
