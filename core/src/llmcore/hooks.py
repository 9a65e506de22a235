"""What the generation and agent hooks receive, and the core's own (innermost) implementations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .agents import Agent
    from .provider import Provider
    from .types import AgentTask


@attrs.define
class GenerationCall:
    """One attempt on one provider, as seen by ``llmcore_generate`` implementations."""

    operation: str
    request: Any
    provider: Provider
    is_async: bool
    _proceed: Callable[[Any], Any] = attrs.field(repr=False, alias="proceed")
    #: The configuration of the client making the call (a plugin reads its own top-level
    #: section with ``llmcore.config_section``); ``None`` when called outside a client.
    config: Any = attrs.field(default=None, repr=False)
    #: Emit a :class:`llmcore.MetricsEvent` to this client's sinks and metrics hooks (e.g.
    #: a cache hit); ``None`` when called outside a client.
    emit: Callable[[Any], None] | None = attrs.field(default=None, repr=False)

    def proceed(self) -> Any:
        """Perform the call with the current ``request`` and return what the provider gives."""
        return self._proceed(self.request)


@attrs.define
class AgentCall:
    """One agent run, as seen by ``llmcore_run_agent`` implementations."""

    task: AgentTask
    agent: Agent
    _proceed: Callable[[AgentTask], Any] = attrs.field(repr=False, alias="proceed")

    def proceed(self) -> Any:
        """Run the agent with the current ``task`` and return its ``AgentResult``."""
        return self._proceed(self.task)


class CoreHooks:
    """The core's implementations: registered last, so plugins' run first."""

    @hookimpl(trylast=True)
    def llmcore_generate(self, call: GenerationCall) -> Any:
        return call.proceed()

    @hookimpl(trylast=True)
    def llmcore_run_agent(self, call: AgentCall) -> Any:
        return call.proceed()
