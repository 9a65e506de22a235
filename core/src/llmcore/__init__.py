"""llmcore: one API and one CLI in front of every LLM server and terminal coding agent.

Importing this package is cheap: it imports no plugin and no HTTP stack. The names below
are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Client": "client",
    "AsyncClient": "client",
    "raise_for_status": "openai_compat",
    "parse_retry_after": "http",
    "HTTPRequest": "http",
    "HTTPResponse": "http",
    "SSEChunks": "http",
    "NDJSONChunks": "http",
    "SSEEvent": "http",
    "SSEDecoder": "http",
    "NDJSONDecoder": "http",
    "Endpoint": "http",
    "Limits": "http",
    "StreamDecoder": "http",
    "status_error": "http",
    "answer_error": "http",
    "server_message": "http",
    "token_count": "http",
    "retryable_status": "http",
    "Provider": "provider",
    "OpenAIProvider": "openai_compat",
    "OpenAIOptions": "openai_compat",
    "Agent": "agents",
    "Invocation": "agents",
    "RunOutput": "agents",
    "register_secret": "secrets",
    "redact": "secrets",
    "hookimpl": "hookspecs",
    "HOOK_API_VERSION": "hookspecs",
    "Config": "config",
    "ProviderConfig": "config",
    "AgentConfig": "config",
    "load_config": "config",
    "GenerationCall": "hooks",
    "AgentCall": "hooks",
    "MetricsEvent": "metrics",
    "MetricsSink": "metrics",
    "Message": "types",
    "ChatRequest": "types",
    "ChatResponse": "types",
    "StreamChunk": "types",
    "Usage": "types",
    "ModelInfo": "types",
    "AgentTask": "types",
    "AgentResult": "types",
    "EmbeddingResponse": "types",
    "Attempt": "types",
    "Health": "types",
    "npm_package_version": "agent_support",
    "home_env": "agent_support",
    "strip_url_suffix": "agent_support",
    "LLMCoreError": "errors",
    "ConfigError": "errors",
    "PluginError": "errors",
    "ProviderError": "errors",
    "ProviderConnectionError": "errors",
    "AuthenticationError": "errors",
    "RateLimitError": "errors",
    "ModelNotFoundError": "errors",
    "ProviderTimeoutError": "errors",
    "ResponseError": "errors",
    "BadRequestError": "errors",
    "StreamInterrupted": "errors",
    "AgentError": "errors",
    "AgentNotFoundError": "errors",
    "AgentTimeoutError": "errors",
    "AgentFailedError": "errors",
    "AllProvidersFailed": "errors",
    "AgentAuthError": "errors",
    "AgentRateLimitError": "errors",
    "AgentConnectionError": "errors",
    "AgentUntrustedError": "errors",
    "AgentCancelledError": "errors",
    "config_section": "config",
    "Conversation": "conversation",
    "AsyncConversation": "conversation",
    "StructuredOutputError": "structured",
    "AttachmentError": "attachments",
    "BudgetExceeded": "budgets",
}

# Written out (not computed from _LAZY) so type checkers see the re-exports; a test checks
# it names exactly _LAZY's keys.
__all__ = [
    "HOOK_API_VERSION",
    "Agent",
    "AgentAuthError",
    "AgentCall",
    "AgentCancelledError",
    "AgentConfig",
    "AgentConnectionError",
    "AgentError",
    "AgentFailedError",
    "AgentNotFoundError",
    "AgentRateLimitError",
    "AgentResult",
    "AgentTask",
    "AgentTimeoutError",
    "AgentUntrustedError",
    "AllProvidersFailed",
    "AsyncClient",
    "AsyncConversation",
    "AttachmentError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ChatRequest",
    "ChatResponse",
    "Client",
    "Config",
    "ConfigError",
    "Conversation",
    "EmbeddingResponse",
    "Endpoint",
    "GenerationCall",
    "HTTPRequest",
    "HTTPResponse",
    "Health",
    "Invocation",
    "LLMCoreError",
    "Limits",
    "Message",
    "MetricsEvent",
    "MetricsSink",
    "ModelInfo",
    "ModelNotFoundError",
    "NDJSONChunks",
    "NDJSONDecoder",
    "OpenAIOptions",
    "OpenAIProvider",
    "PluginError",
    "Provider",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "ResponseError",
    "RunOutput",
    "SSEChunks",
    "SSEDecoder",
    "SSEEvent",
    "StreamChunk",
    "StreamDecoder",
    "StreamInterrupted",
    "StructuredOutputError",
    "Usage",
    "__version__",
    "answer_error",
    "config_section",
    "home_env",
    "hookimpl",
    "load_config",
    "npm_package_version",
    "parse_retry_after",
    "raise_for_status",
    "redact",
    "register_secret",
    "retryable_status",
    "server_message",
    "status_error",
    "strip_url_suffix",
    "token_count",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmcore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"llmcore.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .agent_support import home_env, npm_package_version, strip_url_suffix
    from .agents import Agent, Invocation, RunOutput
    from .attachments import AttachmentError
    from .budgets import BudgetExceeded
    from .client import AsyncClient, Client
    from .config import AgentConfig, Config, ProviderConfig, config_section, load_config
    from .conversation import AsyncConversation, Conversation
    from .errors import (
        AgentAuthError,
        AgentCancelledError,
        AgentConnectionError,
        AgentError,
        AgentFailedError,
        AgentNotFoundError,
        AgentRateLimitError,
        AgentTimeoutError,
        AgentUntrustedError,
        AllProvidersFailed,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        LLMCoreError,
        ModelNotFoundError,
        PluginError,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeoutError,
        RateLimitError,
        ResponseError,
        StreamInterrupted,
    )
    from .hooks import AgentCall, GenerationCall
    from .hookspecs import HOOK_API_VERSION, hookimpl
    from .http import (
        Endpoint,
        HTTPRequest,
        HTTPResponse,
        Limits,
        NDJSONChunks,
        NDJSONDecoder,
        SSEChunks,
        SSEDecoder,
        SSEEvent,
        StreamDecoder,
        answer_error,
        parse_retry_after,
        retryable_status,
        server_message,
        status_error,
        token_count,
    )
    from .metrics import MetricsEvent, MetricsSink
    from .openai_compat import OpenAIOptions, OpenAIProvider, raise_for_status
    from .provider import Provider
    from .secrets import redact, register_secret
    from .structured import StructuredOutputError
    from .types import (
        AgentResult,
        AgentTask,
        Attempt,
        ChatRequest,
        ChatResponse,
        EmbeddingResponse,
        Health,
        Message,
        ModelInfo,
        StreamChunk,
        Usage,
    )
