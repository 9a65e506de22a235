"""Structured output: ``client.chat(..., schema=...)`` returns a parsed, validated object.

A schema is a pydantic model, a dataclass or a JSON Schema dict. The request asks for it with
the provider's own feature, chosen by provider type in :data:`NATIVE` (the one place to add a
provider type): OpenAI-compatible servers get ``response_format: json_schema`` (the Ollama
plugin turns that into ``format``), Anthropic a forced tool call. The answer is checked with
``jsonschema``. A server that refuses ``json_schema`` (llama-cpp-python's server fails its
validation with a 500 naming ``response_format``) is asked once more in its own shape,
``{"type": "json_object", "schema": ...}``. When an answer does not fit, the model is asked
again (at most ``retries`` times) with the validation error, and a last failure raises
:class:`StructuredOutputError` holding the last answer.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from .errors import LLMCoreError
from .types import ChatRequest, ChatResponse, Message

#: The name the schema goes by in the request (the forced tool's name on Anthropic).
SCHEMA_NAME = "answer"
#: The forced tool's name when the schema is not an object: a tool's parameters must be
#: one (Anthropic refuses any other ``input_schema``), so the schema is wrapped as the
#: ``value`` property and the answer unwrapped again.
WRAPPED_NAME = "answer_value"


class StructuredOutputError(LLMCoreError):
    """The model's answer never matched the schema; ``last_answer`` is what it said last."""

    def __init__(
        self, message: str, *, last_answer: str, errors: list[str], hint: str | None = None
    ) -> None:
        self.last_answer = last_answer
        self.errors = errors
        super().__init__(message, hint=hint)


# -- schema from a type ----------------------------------------------------------------------
def json_schema(schema: Any) -> dict[str, Any]:
    """The JSON Schema of a pydantic model, a dataclass or a dict (returned as is)."""
    if isinstance(schema, dict):
        return schema
    if hasattr(schema, "model_json_schema"):
        out: dict[str, Any] = schema.model_json_schema()
        return out
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return _dataclass_schema(schema)
    raise TypeError(
        f"schema must be a pydantic model, a dataclass or a JSON Schema dict, not {schema!r}"
    )


_SIMPLE = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


def _type_schema(tp: Any) -> dict[str, Any]:
    if tp in _SIMPLE:
        return dict(_SIMPLE[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, set) or tp in (list, tuple, set):
        return {"type": "array", "items": _type_schema(args[0])} if args else {"type": "array"}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if origin is typing.Union or isinstance(tp, types.UnionType):
        return {"anyOf": [_type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_schema(tp)
    return {}


def _dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        props[f.name] = _type_schema(hints.get(f.name, Any))
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {
        "title": cls.__name__,
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def build(schema: Any, data: Any) -> Any:
    """The validated JSON ``data`` as the caller's type."""
    if isinstance(schema, dict):
        return data
    if hasattr(schema, "model_validate"):
        return schema.model_validate(data)
    return _from_dict(schema, data)


def _from_dict(tp: Any, data: Any) -> Any:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(data, dict):
        hints = typing.get_type_hints(tp)
        return tp(**{k: _from_dict(hints.get(k, Any), v) for k, v in data.items()})
    if typing.get_origin(tp) is list and isinstance(data, list):
        (item,) = typing.get_args(tp) or (Any,)
        return [_from_dict(item, v) for v in data]
    return data


# -- asking each provider type in its own way -------------------------------------------------
def _openai_shape(request: ChatRequest, schema: dict[str, Any]) -> ChatRequest:
    return attrs.evolve(
        request,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": False},
        },
    )


def _tool_shape(request: ChatRequest, schema: dict[str, Any]) -> ChatRequest:
    """A tool whose parameters are the schema, and the model forced to call it."""
    name, params = SCHEMA_NAME, schema
    if schema.get("type") != "object":
        name, params = (
            WRAPPED_NAME,
            {"type": "object", "properties": {"value": schema}, "required": ["value"]},
        )
    tool = {
        "type": "function",
        "function": {
            "name": name,
            "description": "Give the answer in this structure.",
            "parameters": params,
        },
    }
    return attrs.evolve(
        request,
        response_format=None,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": name}},
    )


#: Provider type → how a request asks for structured output. Types not listed use the
#: OpenAI ``response_format`` (which the Ollama plugin turns into ``format``).
NATIVE: dict[str, Callable[[ChatRequest, dict[str, Any]], ChatRequest]] = {
    "anthropic": _tool_shape,
}


def for_provider(request: ChatRequest, provider_type: str) -> ChatRequest:
    """The request as ``provider_type`` takes a schema (the core's generation hook calls
    this per attempt; the request as the caller built it is left alone)."""
    shape = NATIVE.get(provider_type)
    rf = request.response_format
    if shape is None or not rf:
        return request
    if rf.get("type") == "json_schema":
        return shape(request, (rf.get("json_schema") or {}).get("schema") or {})
    if rf.get("type") == "json_object" and isinstance(rf.get("schema"), dict):
        # The second shape :func:`solve` tries after a 400: still a forced tool here, so
        # the provider's own refusal is what the caller sees, not an unconstrained answer.
        return shape(request, rf["schema"])
    return request


def ask(request: ChatRequest, schema: dict[str, Any]) -> ChatRequest:
    return _openai_shape(request, schema)


# -- reading and checking the answer ------------------------------------------------------------
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def answer_text(resp: ChatResponse) -> str:
    """The JSON text of an answer: the forced tool call's arguments, else the content.

    The call named :data:`SCHEMA_NAME` wins over text: Claude may write a sentence before
    the forced ``tool_use`` block, and that sentence is not the answer."""
    calls = [c.get("function", c) for c in resp.tool_calls or []]
    named = [fn for fn in calls if fn.get("name") in (SCHEMA_NAME, WRAPPED_NAME)]
    if named or (calls and not (resp.content or "").strip()):
        fn = (named or calls)[0]
        args = fn.get("arguments", "")
        if fn.get("name") == WRAPPED_NAME:
            try:
                inner = json.loads(args) if isinstance(args, str) else args
            except json.JSONDecodeError:
                return str(args)  # not JSON: the validation says so and asks again
            if isinstance(inner, dict) and "value" in inner:
                return json.dumps(inner["value"])
        return args if isinstance(args, str) else json.dumps(args)
    return resp.content or ""


def parse(text: str) -> Any:
    """JSON from the answer; a fenced block or the outermost object/array is accepted."""
    s = text.strip()
    m = _FENCE.search(s)
    if m:
        s = m.group(1).strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        start = min((i for i in (s.find("{"), s.find("[")) if i >= 0), default=-1)
        end = max(s.rfind("}"), s.rfind("]"))
        if start >= 0 and end > start:
            return json.loads(s[start : end + 1])
        raise


def problems(schema: dict[str, Any], text: str) -> tuple[Any, list[str]]:
    """(parsed data, what is wrong with it): an empty list means it fits."""
    import jsonschema  # type: ignore[import-untyped]

    try:
        data = parse(text)
    except json.JSONDecodeError as exc:
        return None, [
            f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ]
    validator = jsonschema.validators.validator_for(schema)(schema)
    errs = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    return data, [f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errs[:5]]


def retry_messages(answer: str, errs: list[str]) -> list[Message]:
    """What is added to the conversation when an answer did not fit."""
    return [
        Message("assistant", answer),
        Message(
            "user",
            "That answer does not match the required JSON schema:\n- "
            + "\n- ".join(errs)
            + "\nAnswer again with only a JSON value that matches the schema.",
        ),
    ]


def json_object_flavour(request: ChatRequest) -> ChatRequest | None:
    """The request with the schema as ``{"type": "json_object", "schema": ...}``, the shape
    llama-cpp-python's server takes (it refuses ``json_schema``); ``None`` when
    the request has no ``json_schema`` response format."""
    rf = request.response_format or {}
    if rf.get("type") != "json_schema":
        return None
    spec = (rf.get("json_schema") or {}).get("schema") or {}
    return attrs.evolve(request, response_format={"type": "json_object", "schema": spec})


def refused_format(exc: BaseException) -> bool:
    """Did every provider refuse the request's ``response_format``, as servers that do not
    know ``json_schema`` do? (A 400/422, or an error naming the field: llama-cpp-python's
    server answers its own validation error with a 500.)"""
    attempts = [a for a in getattr(exc, "attempts", None) or [] if not a.skipped]
    return bool(attempts) and all(
        a.status in (400, 422) or "response_format" in (a.message or "") for a in attempts
    )


def solve(
    schema: Any, send: Callable[[ChatRequest], ChatResponse], request: ChatRequest, retries: int = 2
) -> tuple[Any, ChatResponse]:
    """Ask, check, and ask again with the errors (``retries`` times at most)."""
    spec = json_schema(schema)
    req = ask(request, spec)
    errs: list[str] = []
    text = ""
    for _ in range(max(0, retries) + 1):
        try:
            resp = send(req)
        except LLMCoreError as exc:
            other = json_object_flavour(req)
            if other is None or not refused_format(exc):
                raise
            req = other
            resp = send(req)
        text = answer_text(resp)
        data, errs = problems(spec, text)
        if not errs:
            try:
                return build(schema, data), resp
            except Exception as exc:  # pydantic's own validators may add rules
                errs = [str(exc).splitlines()[0]]
        req = attrs.evolve(req, messages=[*req.messages, *retry_messages(text, errs)])
    raise _failed(retries, text, errs)


async def asolve(
    schema: Any, send: Callable[[ChatRequest], Any], request: ChatRequest, retries: int = 2
) -> tuple[Any, ChatResponse]:
    """The async :func:`solve`."""
    spec = json_schema(schema)
    req = ask(request, spec)
    errs: list[str] = []
    text = ""
    for _ in range(max(0, retries) + 1):
        try:
            resp = await send(req)
        except LLMCoreError as exc:
            other = json_object_flavour(req)
            if other is None or not refused_format(exc):
                raise
            req = other
            resp = await send(req)
        text = answer_text(resp)
        data, errs = problems(spec, text)
        if not errs:
            try:
                return build(schema, data), resp
            except Exception as exc:
                errs = [str(exc).splitlines()[0]]
        req = attrs.evolve(req, messages=[*req.messages, *retry_messages(text, errs)])
    raise _failed(retries, text, errs)


def _failed(retries: int, text: str, errs: list[str]) -> StructuredOutputError:
    return StructuredOutputError(
        f"the answer did not match the schema after {retries + 1} tries: "
        + "; ".join(errs)
        + f"\nlast answer: {text[:500]!r}",
        last_answer=text,
        errors=errs,
        hint="a larger model, a simpler schema, or more retries (schema_retries=)",
    )
