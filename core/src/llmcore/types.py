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
    """One turn of a conversation."""

    #: ``system``, ``user``, ``assistant`` or ``tool``.
    role: str
    #: The text of the turn.
    content: str = ""
    #: An optional name of the speaker (OpenAI's ``name``).
    name: str | None = None
    #: On an assistant turn: the tool calls it made (OpenAI-shaped, see "Tool calls").
    tool_calls: list[dict[str, Any]] | None = None
    #: On a ``tool`` turn: the id of the call this is the result of.
    tool_call_id: str | None = None
    #: Images sent with the turn: URLs, ``data:`` URLs or bare base64.
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
    """Tokens one call used."""

    #: Prompt tokens, cache reads and writes included (OpenAI's convention).
    input_tokens: int = 0
    #: Tokens of the answer (thinking included).
    output_tokens: int = 0
    #: Of ``input_tokens``, those read from the provider's prompt cache (priced lower).
    cached_tokens: int | None = None
    #: Of ``output_tokens``, those spent thinking, when the server says.
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

    #: The conversation, oldest first.
    messages: list[Message]
    #: The model; ``None``: the provider's first configured model.
    model: str | None = None
    #: Sampling temperature.
    temperature: float | None = None
    #: Most tokens in the answer.
    max_tokens: int | None = None
    #: Nucleus sampling.
    top_p: float | None = None
    #: Stop sequences.
    stop: list[str] | None = None
    #: Sampling seed, where the API has one.
    seed: int | None = None
    #: OpenAI's ``response_format`` (JSON mode), where the API has one.
    response_format: dict[str, Any] | None = None
    #: Tools the model may call (OpenAI-shaped, see "Tool calls").
    tools: list[dict[str, Any]] | None = None
    #: ``auto``, ``required``, ``none`` or a named function.
    tool_choice: Any = None
    #: Whether the caller asked for a stream (``stream()`` sets it).
    stream: bool = False
    #: Seconds this call may take, replacing the provider's read and first-token timeouts.
    timeout: float | None = None
    #: Keys passed to the server's body untouched.
    extra: dict[str, Any] = attrs.field(factory=dict)
    #: Set by a gateway that relays a stream to a client of the same API (``llmcore
    #: serve``: OpenAI chat to an OpenAI-compatible server). A provider that speaks that
    #: API puts each event's own lines on the chunks (``StreamChunk.raw``) and may give
    #: the events of one read as one chunk; any other provider ignores it (the gateway
    #: renders its chunks). Not part of the question: not in ``to_dict()``.
    relay: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = _to_dict(self)
        d.pop("relay", None)
        return d


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
    """A complete answer."""

    #: The text of the answer (thinking kept apart).
    content: str
    #: The model that answered, as the server names it.
    model: str | None = None
    #: The configured provider name that answered.
    provider: str | None = None
    #: Tokens used.
    usage: Usage = attrs.field(factory=Usage)
    #: ``stop``, ``length``, ``tool_calls`` or ``content_filter``.
    finish_reason: str | None = None
    #: Tool calls the model made (OpenAI-shaped, see "Tool calls").
    tool_calls: list[dict[str, Any]] | None = None
    #: Reasoning text, when the model thinks aloud and the server sends it apart.
    thinking: str | None = None
    #: Seconds the call took (set by the provider base and the router).
    latency_s: float = 0.0
    #: Seconds to the first streamed piece, for streamed answers.
    ttft_s: float | None = None
    #: USD, from the registry or the provider's ``cost:`` (set by the router).
    cost_usd: float | None = None
    #: Every try the router made for this answer (set by the router).
    attempts: list[Attempt] = attrs.field(factory=list)
    #: The server's decoded answer, for debugging (not in ``to_dict()``).
    raw: Any = attrs.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = _to_dict(self)
        d.pop("raw", None)
        d["usage"] = self.usage.to_dict()
        return d


@attrs.define
class StreamChunk:
    """A piece of a streamed answer. The last chunk carries ``finish_reason`` and ``usage``."""

    #: A piece of the answer's text.
    content: str = ""
    #: A piece of the reasoning text.
    thinking: str = ""
    #: On the last chunk only: why the answer ended.
    finish_reason: str | None = None
    #: On the last chunk: the tokens of the whole answer.
    usage: Usage | None = None
    #: On the last chunk: the tool calls, assembled from the stream's pieces.
    tool_calls: list[dict[str, Any]] | None = None
    #: The model that answers.
    model: str | None = None
    #: The configured provider name that answers.
    provider: str | None = None
    #: Only when the request asked to relay (``ChatRequest.relay``): the server's own
    #: events this chunk was read from, as SSE (``data: …`` and a blank line each), ready
    #: to forward; ``b""`` on the closing chunk (the server's events already said it).
    #: ``None`` otherwise. Not in ``to_dict()``.
    raw: bytes | None = attrs.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = _to_dict(self)
        d.pop("raw", None)
        return d


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
