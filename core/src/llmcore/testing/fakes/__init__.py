"""Fake servers: real HTTP servers on 127.0.0.1 that speak each backend's API faithfully.

Each fake is scriptable (a queue of :class:`Reply`) and records every request. Use them as
context managers or through the pytest fixtures in :mod:`llmcore.testing.pytest_plugin`.
"""

from __future__ import annotations

from .anthropic import AnthropicFake
from .base import FakeServer, RecordedRequest, Reply
from .gemini import GeminiFake
from .ollama import OllamaFake
from .openai import LMStudioFake, OpenAIFake, VLLMFake
from .responses import ResponsesFake

__all__ = [
    "AnthropicFake",
    "FakeServer",
    "GeminiFake",
    "LMStudioFake",
    "OllamaFake",
    "OpenAIFake",
    "RecordedRequest",
    "Reply",
    "ResponsesFake",
    "VLLMFake",
]
