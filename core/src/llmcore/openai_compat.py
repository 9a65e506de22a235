"""The shared client for OpenAI-compatible servers, and the core ``openai`` provider type.

(First version: sync chat and streaming over httpx. The provider issue completes it.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from .errors import (
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseError,
)
from .provider import Provider
from .types import ChatRequest, ChatResponse, ModelInfo, StreamChunk, Usage


class OpenAIProvider(Provider):
    type_name = "openai"
    default_base_url = "https://api.openai.com/v1"
    default_api_key_env = "OPENAI_API_KEY"
    local = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._client: Any = None

    @property
    def http(self) -> Any:
        if self._client is None:
            import httpx

            t = self.config.timeout
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(
                base_url=self.base_url or "", headers=headers,
                timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            )
        return self._client

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_for(request),
            "messages": [m.to_dict() for m in request.messages],
        }
        for key in ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format",
                    "tools", "tool_choice"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if stream:
            body["stream"] = True
        body.update(request.extra)
        return body

    def _post(self, path: str, body: dict[str, Any], stream: bool = False) -> Any:
        import httpx

        try:
            if stream:
                req = self.http.build_request("POST", path, json=body)
                resp = self.http.send(req, stream=True)
            else:
                resp = self.http.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"{self.name}: timed out: {exc}", provider=self.name
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderConnectionError(
                f"{self.name}: cannot connect to {self.base_url}: {exc}", provider=self.name,
                hint="is the server running?",
            ) from exc
        if resp.status_code >= 400:
            if stream:
                resp.read()
                resp.close()
            raise_for_status(self.name, body.get("model"), resp.status_code, resp.text,
                             resp.headers)
        return resp

    def chat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        resp = self._post("/chat/completions", self._body(request, False))
        try:
            data = resp.json()
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError) as exc:
            raise ResponseError(f"{self.name}: unreadable answer: {resp.text[:200]!r}",
                                provider=self.name) from exc
        u = data.get("usage") or {}
        return ChatResponse(
            content=choice["message"].get("content") or "",
            model=data.get("model"), provider=self.name,
            usage=Usage(u.get("prompt_tokens", 0), u.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
            tool_calls=choice["message"].get("tool_calls"),
            latency_s=time.monotonic() - t0, raw=data,
        )

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        resp = self._post("/chat/completions", self._body(request, True), stream=True)
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                data = json.loads(payload)
                for choice in data.get("choices", []):
                    delta = choice.get("delta") or {}
                    yield StreamChunk(content=delta.get("content") or "",
                                      finish_reason=choice.get("finish_reason"),
                                      model=data.get("model"), provider=self.name)
        finally:
            resp.close()

    def models(self) -> list[ModelInfo]:
        resp = self.http.get("/models")
        return [ModelInfo(name=m["id"], provider=self.name) for m in resp.json().get("data", [])]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def raise_for_status(provider: str, model: str | None, status: int, text: str,
                     headers: Any) -> None:
    snippet = text[:300]
    kw: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    if status in (401, 403):
        raise AuthenticationError(f"{provider}: authentication failed ({status}): {snippet}",
                                  hint="check the API key (api_key_env)", **kw)
    if status == 404:
        raise ModelNotFoundError(f"{provider}: not found ({status}): {snippet}",
                                 hint="check the model name with `llmcore models`", **kw)
    if status == 429:
        raise RateLimitError(f"{provider}: rate limited: {snippet}",
                             retry_after=parse_retry_after(headers), **kw)
    if status in (400, 422):
        raise BadRequestError(f"{provider}: bad request ({status}): {snippet}", **kw)
    raise ResponseError(f"{provider}: server error {status}: {snippet}",
                        retryable=status in (500, 502, 503, 504), **kw)


def parse_retry_after(headers: Any) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
