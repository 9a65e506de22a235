"""Check a Messages API request body against the official ``anthropic`` SDK's types.

``MessageCreateParams`` alone is not enough: pydantic checks its ``Iterable`` fields
lazily, so a wrong content block would pass. Every content block, tool and the
``tool_choice`` is therefore checked on its own as well.
"""

from __future__ import annotations

from typing import Any

import anthropic.types as sdk
import pydantic

_BODY = pydantic.TypeAdapter(sdk.MessageCreateParams)
_BLOCK = pydantic.TypeAdapter(sdk.ContentBlockParam)
_TOOL = pydantic.TypeAdapter(sdk.ToolParam)
_CHOICE = pydantic.TypeAdapter(sdk.ToolChoiceParam)


def check_request(body: dict[str, Any]) -> None:
    """Raise ``pydantic.ValidationError`` when the SDK's types refuse ``body``."""
    _BODY.validate_python(body)
    for message in body["messages"]:
        if not isinstance(message["content"], str):
            for block in message["content"]:
                _BLOCK.validate_python(block)
    for tool in body.get("tools") or []:
        _TOOL.validate_python(tool)
    if "tool_choice" in body:
        _CHOICE.validate_python(body["tool_choice"])
