"""Attachments reach each provider in its own shape; types are sniffed, sizes limited, and a
model the registry says is blind is skipped with the reason in the attempts."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from llmcore import Client
from llmcore.attachments import AttachmentError, load
from llmcore.config import parse_config
from llmcore.testing.fakes import OpenAIFake, Reply
from llmcore.testing.fakes.ollama import OllamaFake

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 40


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    out = {"png": tmp_path / "a.png", "jpeg": tmp_path / "b.bin", "text": tmp_path / "c.png"}
    out["png"].write_bytes(PNG)
    out["jpeg"].write_bytes(JPEG)  # the name says nothing: the bytes do
    out["text"].write_text("not an image at all")
    return out


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "pic").write_bytes(JPEG)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)  # type: ignore[misc]

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cfg(plugin: str, url: str, model: str) -> str:
    return (
        f"providers:\n  p:\n    plugin: {plugin}\n    base_url: {url}\n"
        f"    models: ['{model}']\nmetrics: {{enabled: false}}\nrouting: {{state: memory}}\n"
    )


def test_openai_gets_image_url_parts(images: dict[str, Path], web: str) -> None:
    with OpenAIFake() as fake, Client(parse_config(cfg("openai", fake.base_url, "gpt-4o"))) as c:
        fake.push(Reply(text="a picture"))
        c.chat("what is this?", attachments=[images["png"], f"{web}/pic"])
    (msg,) = fake.requests[0].json["messages"]
    assert msg["content"][0] == {"type": "text", "text": "what is this?"}
    urls = [p["image_url"]["url"] for p in msg["content"][1:]]
    assert urls == [
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(),
    ]


def test_ollama_gets_bare_base64(ollama_fake: OllamaFake, images: dict[str, Path]) -> None:
    with Client(parse_config(cfg("ollama", ollama_fake.url, "llava"))) as c:
        ollama_fake.catalog.setdefault("llava:latest", next(iter(ollama_fake.catalog.values())))
        ollama_fake.push(Reply(text="seen"), Reply(text="seen again"))
        c.chat("look", attachments=[images["jpeg"]])
        "".join(ch.content for ch in c.stream("look", attachments=[images["png"]]))
    assert ollama_fake.requests[-2].json["messages"][0]["images"] == [
        base64.b64encode(JPEG).decode()
    ]
    assert ollama_fake.requests[-1].json["messages"][0]["images"] == [
        base64.b64encode(PNG).decode()
    ]


def test_a_blind_model_is_skipped_with_the_reason(images: dict[str, Path]) -> None:
    with OpenAIFake() as blind, OpenAIFake() as seeing:
        text = (
            f"providers:\n  blind:\n    plugin: openai\n    base_url: {blind.base_url}\n"
            f"    models: ['gemma3:1b']\n  seeing:\n    plugin: openai\n"
            f"    base_url: {seeing.base_url}\n    models: [gpt-4o]\n"
            "metrics: {enabled: false}\nrouting: {state: memory}\n"
        )
        with Client(parse_config(text)) as c:
            seeing.push(Reply(text="I see a PNG"))
            resp = c.chat("look", attachments=[images["png"]])
            plain = c.chat("no image")  # without an image the first one answers again
    assert resp.provider == "seeing" and plain.provider == "blind"
    skipped = resp.attempts[0]
    assert (skipped.provider, skipped.skipped, skipped.error_type) == ("blind", True, "NoVision")
    assert "cannot see images" in skipped.message
    assert len(blind.requests) == 1  # only the plain prompt reached it


def test_type_and_size_are_checked(images: dict[str, Path], tmp_path: Path) -> None:
    assert load(images["jpeg"]).mime == "image/jpeg"
    with pytest.raises(AttachmentError, match="not an image"):
        load(images["text"])
    with pytest.raises(AttachmentError, match="over the limit"):
        load(images["png"], max_bytes=10)
    with pytest.raises(AttachmentError, match="not found"):
        load(tmp_path / "missing.png")


def test_chat_attach_cli(images: dict[str, Path], tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        path = tmp_path / "llmcore.yaml"
        path.write_text(cfg("openai", fake.base_url, "gpt-4o"))
        fake.push(Reply(text="two images"))
        run = [sys.executable, "-m", "llmcore", "--config", str(path), "chat"]
        env = {**os.environ, "NO_COLOR": "1"}
        out = subprocess.run(
            [*run, "-a", str(images["png"]), "-a", str(images["jpeg"]), "describe"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "two images"
        parts = fake.requests[0].json["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
        bad = subprocess.run(
            [*run, "-a", str(images["text"]), "describe"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert bad.returncode == 2 and "not an image" in bad.stderr
        assert len(fake.requests) == 1


def test_anthropic_gets_image_blocks(images: dict[str, Path], web: str) -> None:
    """Attachments (files and downloaded URLs) reach the Messages API as base64 ``image``
    blocks with the sniffed media type; an image given as an http(s) URL on a message is
    sent as a ``url`` source. The official SDK's types accept every body sent."""
    from anthropic_shape import check_request
    from llmcore.testing.fakes import AnthropicFake
    from llmcore.types import Message

    with AnthropicFake() as fake:
        text = cfg("anthropic", fake.base_url, "claude-3-haiku").replace(
            "    models:", "    api_key: sk-ant-test\n    models:"
        )
        with Client(parse_config(text)) as c:
            fake.push(Reply(text="a picture"), Reply(text="streamed"), Reply(text="linked"))
            c.chat("what is this?", attachments=[images["png"], f"{web}/pic"])
            "".join(ch.content for ch in c.stream("and this?", attachments=[images["jpeg"]]))
            c.chat([Message("user", "and this one?", images=["https://example.com/cat.jpg"])])
    bodies = [r.json for r in fake.message_requests()]
    assert len(bodies) == 3
    b64 = {k: base64.b64encode(v).decode() for k, v in (("png", PNG), ("jpeg", JPEG))}
    (msg,) = bodies[0]["messages"]
    assert msg["role"] == "user" and msg["content"] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": b64["png"]},
        },
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": b64["jpeg"]},
        },
        {"type": "text", "text": "what is this?"},
    ]
    assert bodies[1]["stream"] is True and bodies[1]["messages"][0]["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": b64["jpeg"]},
    }
    assert bodies[2]["messages"][0]["content"][0] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }
    for body in bodies:
        check_request(body)


def test_a_url_is_downloaded_through_the_transport_following_a_few_redirects(
    tmp_path: Path,
) -> None:
    """Redirects are followed (a bounded number); a body over the limit is refused while
    it arrives, gzip or not."""
    import gzip

    big = gzip.compress(b"\x00" * (5 * 1024 * 1024))

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/hop"):
                n = int(self.path[4:])
                self.send_response(302)
                self.send_header("Location", f"/hop{n + 1}" if n < 9 else "/pic")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/pic":
                self.send_response(200)
                self.send_header("Content-Length", str(len(JPEG)))
                self.end_headers()
                self.wfile.write(JPEG)
            else:  # a small gzip body that inflates to 5 MB
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(big)))
                self.end_headers()
                self.wfile.write(big)

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert load(f"{base}/hop7").data == JPEG  # three redirects
        with pytest.raises(AttachmentError, match="redirects more than 5 times"):
            load(f"{base}/hop0")
        with pytest.raises(AttachmentError, match="over the limit"):
            load(f"{base}/bomb", max_bytes=1024 * 1024)
    finally:
        server.shutdown()
        server.server_close()
