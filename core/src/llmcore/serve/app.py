"""The gateway's aiohttp application: one worker's handlers, limits, health and metrics.

Every handler goes the same way: admit (concurrency bound, body size), authenticate and
authorize (:mod:`.keys`), parse with the endpoint's protocol module, route
(:mod:`.routes`) through the router, render in the same protocol. Errors before the first
byte are answered in the endpoint's own error shape; after it, the stream ends with the
protocol's error event. A client that goes away cancels the handler (``handler_cancellation``)
and with it the upstream call. Nothing here logs a prompt or a key.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..hookspecs import hookimpl
from . import anthropic_wire, openai_wire, responses_wire, routes
from .batching import batches
from .keys import KeyRing
from .wire import WireError, from_error

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..metrics import MetricsEvent

#: The key name of the request being served (read by the metrics tagger below).
current_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "llmcore_gateway_key", default=None
)
_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
READY_TTL_S = 5.0


class _EventStream(web.StreamResponse):
    """An SSE answer whose headers go out with its first bytes, not in a write of their
    own: the gateway prepares it only once the upstream's first chunk is in hand, so
    nothing is gained by sending them earlier (aiohttp's own ``Response`` does the same;
    on a version without this switch the headers simply go first)."""

    _send_headers_immediately = False


class KeyTagger:
    """Puts the gateway key's name on every metrics event of the request (router events
    included), through the public metrics hook: it runs before the sinks. A chain entry
    that is not the last and failed as a whole is recorded as a ``failover``, not as a
    failed request (the request goes on to the next entry)."""

    @hookimpl
    def llmcore_metrics_event(self, event: MetricsEvent) -> None:
        name = current_key.get()
        if name is not None:
            event.key_name = name
        if event.kind == "request" and event.outcome != "ok" and routes.chain_step.get():
            event.kind = "failover"


class Protocol:
    """How one endpoint family renders errors."""

    def __init__(self, name: str, error_body: Callable[[WireError], dict[str, Any]]) -> None:
        self.name = name
        self.error_body = error_body

    def error(self, err: WireError) -> web.Response:
        return web.json_response(
            self.error_body(err), status=err.status, headers=err.headers or None, dumps=_dumps
        )


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


OPENAI = Protocol("openai", openai_wire.error_body)
ANTHROPIC = Protocol("anthropic", anthropic_wire.error_body)
RESPONSES = Protocol("responses", responses_wire.error_body)


class Gateway:
    """One worker's state: the client (router, providers, sinks), routes, keys, limits."""

    def __init__(
        self,
        client: AsyncClient,
        keyring: KeyRing,
        *,
        max_concurrency: int = 512,
        prometheus: Any = None,
    ) -> None:
        self.client = client
        self.router = client.router
        cfg = client.runtime.config.serve
        self.routes = routes.Routes(cfg.models, client.runtime.providers)
        self.keyring = keyring
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self.prometheus = prometheus  # serve.metrics.GatewayMetrics or None
        #: Every answer says which worker gave it (``X-Llmcore-Worker``): for operators
        #: reading logs, and the failure tests. Set where answers are made, not by an
        #: ``on_response_prepare`` signal (a coroutine per answer).
        self.pid = str(os.getpid())
        self._ready: tuple[float, bool, dict[str, Any]] | None = None

    # -- plumbing -----------------------------------------------------------------------
    def app(self, max_body_bytes: int) -> web.Application:
        app = web.Application(client_max_size=max_body_bytes)
        r = app.router
        r.add_post("/v1/chat/completions", self._wrap(OPENAI, "chat", self.chat))
        r.add_post("/v1/completions", self._wrap(OPENAI, "completions", self.completions))
        r.add_post("/v1/embeddings", self._wrap(OPENAI, "embeddings", self.embeddings))
        r.add_get("/v1/models", self._wrap(OPENAI, "models", self.models))
        r.add_post("/v1/messages", self._wrap(ANTHROPIC, "messages", self.messages))
        r.add_post(
            "/v1/messages/count_tokens", self._wrap(ANTHROPIC, "count_tokens", self.count_tokens)
        )
        r.add_post("/v1/responses", self._wrap(RESPONSES, "responses", self.responses))
        r.add_get("/health", self.health)
        r.add_get("/health/ready", self.ready)
        r.add_get("/metrics", self.metrics)
        return app

    def _wrap(
        self,
        proto: Protocol,
        endpoint: str,
        handler: Callable[[web.Request, str | None], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            if self.in_flight >= self.max_concurrency:
                return self._count(
                    endpoint,
                    None,
                    proto.error(
                        WireError(
                            429,
                            "the gateway is at its concurrency limit; retry shortly",
                            "overloaded",
                            headers={"Retry-After": "1"},
                        )
                    ),
                )
            self.in_flight += 1
            key_name: str | None = None
            try:
                key_name = self._authenticate(request)
                token = current_key.set(key_name)
                try:
                    resp = await handler(request, key_name)
                finally:
                    current_key.reset(token)
            except WireError as err:
                if not err.routed:
                    self._refused(endpoint, key_name, err)
                resp = proto.error(err)
            except web.HTTPRequestEntityTooLarge:
                resp = proto.error(
                    WireError(413, "request body too large (serve.max_body_bytes)", "too_large")
                )
            except Exception as exc:  # a bug here: one line, no traceback (no prompt in it)
                from ..secrets import redact

                print(
                    f"llmcore serve: {endpoint}: {type(exc).__name__}: {redact(str(exc))[:200]}",
                    file=sys.stderr,
                    flush=True,
                )
                resp = proto.error(
                    WireError(500, f"internal gateway error ({type(exc).__name__})", "upstream")
                )
            finally:
                self.in_flight -= 1
            if not resp.prepared:  # a stream has it already (see _stream)
                resp.headers["X-Llmcore-Worker"] = self.pid
            return self._count(endpoint, key_name, resp)

        return handle

    def _refused(self, endpoint: str, key: str | None, err: WireError) -> None:
        """A request refused before routing (bad body, key, limit) is still an event."""
        metrics = self.client.runtime.metrics
        if metrics.listening:
            from ..metrics import MetricsEvent

            metrics.emit(
                MetricsEvent(
                    kind="refused",
                    operation=endpoint,
                    outcome=err.kind,
                    status=err.status,
                    key_name=key,
                )
            )

    def _count(
        self, endpoint: str, key: str | None, resp: web.StreamResponse
    ) -> web.StreamResponse:
        if self.prometheus is not None:  # counted after the answer is written, as events are
            asyncio.get_running_loop().call_soon(
                self.prometheus.request,
                endpoint,
                key,
                resp.headers.get("X-Llmcore-Provider", ""),
                resp.status,
            )
        return resp

    def _authenticate(self, request: web.Request) -> str | None:
        if not self.keyring.enabled:
            return None
        auth = request.headers.get("Authorization", "")
        presented = (
            auth[7:].strip()
            if auth[:7].lower() == "bearer "
            else request.headers.get("x-api-key") or request.headers.get("api-key")
        )
        name, cfg, slot = self.keyring.identify(presented)
        request["key"] = (name, cfg, slot)
        return name

    async def _admit(self, request: web.Request, model: str) -> None:
        """Per key: may it use ``model``, is it within its rate and its budget?"""
        got = request.get("key")
        if got is None:
            return
        name, cfg, slot = got
        self.keyring.check_model(name, cfg, model)
        self.keyring.check_rate(name, cfg, slot)
        await self.keyring.check_budget(name, cfg)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WireError(400, f"the body is not valid JSON: {exc}") from None

    # -- OpenAI ---------------------------------------------------------------------------
    async def chat(self, request: web.Request, key: str | None) -> web.StreamResponse:
        call = openai_wire.parse_chat(await self._body(request))
        model = call.request.model or ""
        await self._admit(request, model)
        targets = self.routes.targets(model)
        if not call.stream:
            resp = await self._call(routes.achat(self.router, call.request, targets), model)
            return self._json(openai_wire.render_chat(resp, model), resp.provider)
        # An OpenAI-compatible upstream's events go to this OpenAI client as they came
        # (checked, not re-encoded); other providers' chunks are rendered.
        call.request.relay = True
        enc = openai_wire.ChatStream(model, call.include_usage)
        return await self._stream(request, call.request, targets, model, b"", enc)

    async def completions(self, request: web.Request, key: str | None) -> web.StreamResponse:
        req, _ = openai_wire.parse_completion(await self._body(request))
        model = req.model or ""
        await self._admit(request, model)
        resp = await self._call(
            routes.achat(self.router, req, self.routes.targets(model), operation="generate"), model
        )
        return self._json(openai_wire.render_completion(resp, model), resp.provider)

    async def embeddings(self, request: web.Request, key: str | None) -> web.StreamResponse:
        texts, model, fmt = openai_wire.parse_embeddings(await self._body(request))
        await self._admit(request, model)
        resp = await self._call(
            routes.aembed(self.router, texts, self.routes.targets(model)), model
        )
        return self._json(openai_wire.render_embeddings(resp, model, fmt), resp.provider)

    async def models(self, request: web.Request, key: str | None) -> web.StreamResponse:
        names = self.routes.names()
        got = request.get("key")
        if got is not None and got[1].models:
            names = [n for n in names if n in got[1].models] + [
                n for n in got[1].models if n not in names
            ]
        return self._json(openai_wire.render_models(names), None)

    # -- Anthropic ------------------------------------------------------------------------
    async def messages(self, request: web.Request, key: str | None) -> web.StreamResponse:
        req, stream, dropped = anthropic_wire.parse_messages_request(await self._body(request))
        model = req.model or ""
        await self._admit(request, model)
        targets = self.routes.targets(model)
        if not stream:
            resp = await self._call(routes.achat(self.router, req, targets), model)
            return self._json(anthropic_wire.render_message(resp, model), resp.provider, dropped)
        enc = anthropic_wire.MessageStream(model)
        return await self._stream(request, req, targets, model, enc.start(), enc, dropped)

    async def count_tokens(self, request: web.Request, key: str | None) -> web.StreamResponse:
        req, _, _ = anthropic_wire.parse_messages_request(await self._body(request), counting=True)
        await self._admit(request, req.model or "")
        return self._json({"input_tokens": anthropic_wire.count_tokens(req)}, None)

    # -- Responses ------------------------------------------------------------------------
    async def responses(self, request: web.Request, key: str | None) -> web.StreamResponse:
        body = await self._body(request)
        req, stream, dropped = responses_wire.parse_responses_request(body)
        model = req.model or ""
        await self._admit(request, model)
        targets = self.routes.targets(model)
        if not stream:
            resp = await self._call(routes.achat(self.router, req, targets), model)
            return self._json(
                responses_wire.render_response(resp, model, body), resp.provider, dropped
            )
        enc = responses_wire.ResponseStream(model, body)
        return await self._stream(request, req, targets, model, enc.start(), enc, dropped)

    # -- shared answer paths --------------------------------------------------------------
    @staticmethod
    async def _call(aw: Awaitable[Any], model: str) -> Any:
        try:
            return await aw
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = from_error(exc, model)
            err.routed = True  # the router already recorded this request's events
            raise err from None

    @staticmethod
    def _headers(provider: str | None, dropped: list[str] | None) -> dict[str, str]:
        headers = {"X-Llmcore-Provider": provider} if provider else {}
        if dropped:
            headers["X-Llmcore-Dropped-Tools"] = ", ".join(dropped)
        return headers

    def _json(
        self, data: Any, provider: str | None, dropped: list[str] | None = None
    ) -> web.Response:
        return web.Response(
            text=_dumps(data),
            content_type="application/json",
            headers=self._headers(provider, dropped) or None,
        )

    async def _stream(
        self,
        request: web.Request,
        req: Any,
        targets: list[routes.Target],
        model: str,
        head: bytes,
        enc: Any,
        dropped: list[str] | None = None,
    ) -> web.StreamResponse:
        # Failover happens inside aopen_stream, before a byte is sent: errors up to here
        # are ordinary error answers.
        first, it = await self._call(routes.aopen_stream(self.router, req, targets), model)
        provider = first.provider if first is not None else None
        resp = _EventStream(
            status=200,
            headers={
                **_SSE_HEADERS,
                **self._headers(provider, dropped),
                "X-Llmcore-Worker": self.pid,  # sent at prepare, before _wrap sees it
            },
        )
        await resp.prepare(request)
        try:
            out = head
            try:
                # One socket write per batch of events that arrived together (the first
                # chunk leads; it goes out alone when the next one is not there yet). The
                # headers go with the first batch, the stream's end with the last when it
                # was there too: a short answer read at once is one write.
                async for group, last in batches(it, [first] if first is not None else None):
                    data = out + b"".join([enc.chunk(chunk) for chunk in group])
                    out = b""
                    if last:
                        out = data
                    elif data:
                        await resp.write(data)
            except (ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception as exc:  # after the first byte: the protocol's error event
                await resp.write(out + enc.error(from_error(exc, model)))
                return resp
            await resp.write_eof(out + enc.end())
        except ConnectionResetError:  # the client went away: nothing left to tell it
            return resp
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:  # a client gone mid-stream: release the upstream call
                await aclose()
        await resp.write_eof()
        return resp

    # -- health and metrics ---------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "in_flight": self.in_flight}, headers={"X-Llmcore-Worker": self.pid}
        )

    async def ready(self, request: web.Request) -> web.Response:
        """Ready when at least one provider answers its health probe (cached a few s)."""
        now = time.monotonic()
        if self._ready is None or now - self._ready[0] > READY_TTL_S:
            providers = self.client.runtime.providers

            async def probe(p: Any) -> tuple[str, bool]:
                try:
                    h = await asyncio.wait_for(asyncio.to_thread(p.health), 3.0)
                    return p.name, bool(h.ok)
                except Exception:
                    return p.name, False

            got = await asyncio.gather(*(probe(p) for p in providers.values()))
            detail = dict(got)
            self._ready = (now, any(detail.values()), detail)
        _, ok, detail = self._ready
        return web.json_response(
            {"status": "ready" if ok else "unavailable", "providers": detail},
            status=200 if ok else 503,
            headers={"X-Llmcore-Worker": self.pid},
        )

    async def metrics(self, request: web.Request) -> web.Response:
        if self.prometheus is None:
            return web.Response(status=404, text="metrics are off (metrics.enabled: false)\n")
        body, ctype = self.prometheus.exposition()
        return web.Response(body=body, headers={"Content-Type": ctype})
