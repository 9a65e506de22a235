"""Attachments: files and URLs turned into images a model can see (``chat -a``, ``attachments=``).

Each attachment is read (a URL is downloaded) once, its type detected from its first bytes
(never from its name or the server's ``Content-Type``), its size checked, and it is
carried on the last user message as a ``data:`` URL. Each provider type then gets it in its
own shape (:func:`for_provider`, called from the core's generation hook): OpenAI-compatible
servers take the data URL as an ``image_url`` part, Ollama takes the bare base64, and the
Anthropic plugin makes it a base64 ``image`` block with the sniffed ``media_type``. A URL
attachment is downloaded here, so its type and size are checked like a file's; only an
image put on a message as an http(s) URL by the caller is sent to Anthropic as a ``url``
source.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import LLMCoreError, ProviderError, ResponseError
from .http.limits import Limits
from .http.messages import HTTPRequest
from .http.sync import SyncTransport

if TYPE_CHECKING:
    from .types import ChatRequest, Message

#: The largest attachment accepted (OpenAI's limit for one image is 20 MB).
MAX_BYTES = 20 * 1024 * 1024


class AttachmentError(LLMCoreError):
    """An attachment that cannot be sent (missing, too large, not an image)."""

    exit_code = 2


@attrs.define
class Attachment:
    source: str
    mime: str
    data: bytes = attrs.field(repr=False)

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"

    def describe(self) -> str:
        return f"{self.source} ({self.mime}, {len(self.data)} bytes)"


def sniff(data: bytes) -> str | None:
    """The image type the bytes start with, or ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def load(
    item: str | os.PathLike[str] | bytes | Attachment, max_bytes: int = MAX_BYTES
) -> Attachment:
    """Read one attachment: a path, an http(s) URL, raw bytes, or an :class:`Attachment`."""
    if isinstance(item, Attachment):
        return item
    if isinstance(item, bytes):
        return _checked("(bytes)", item, None, max_bytes)
    text = os.fspath(item)
    if text.startswith(("http://", "https://")):
        return _download(text, max_bytes)
    path = Path(text).expanduser()
    if not path.is_file():
        raise AttachmentError(
            f"attachment not found: {path}", hint="give the path of an image file or an http(s) URL"
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise AttachmentError(
            f"attachment {path} is {size} bytes, over the limit of {max_bytes}",
            hint="resize or compress the image",
        )
    return _checked(str(path), path.read_bytes(), mimetypes.guess_type(path.name)[0], max_bytes)


#: Redirects an attachment URL may take (image hosts and CDNs redirect; loops end here).
MAX_REDIRECTS = 5
_DOWNLOAD_LIMITS = Limits(connect=10.0, read=30.0, first_token=30.0, total=60.0)


def _download(url: str, max_bytes: int) -> Attachment:
    """GET an image through llmcore's transport (bounded body, deadlines); redirects are
    followed here, a few hops at most: the URL is the user's, and nothing secret is sent."""
    import urllib.parse

    limits = attrs.evolve(_DOWNLOAD_LIMITS, max_response_bytes=max_bytes)
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        transport = SyncTransport("attachment", limits, {"User-Agent": "llmcore"}, tls_url=target)
        try:
            resp = transport.send(HTTPRequest("GET", ""), target)
        except ResponseError as exc:
            if "larger than" in exc.message:
                raise AttachmentError(
                    f"attachment {url} is over the limit of {max_bytes} bytes",
                    hint="use a smaller image",
                ) from None
            raise AttachmentError(
                f"attachment {url} could not be downloaded: {exc.message}",
                hint="check the URL and the network",
            ) from None
        except ProviderError as exc:
            raise AttachmentError(
                f"attachment {url} could not be downloaded: {exc.message}",
                hint="check the URL and the network",
            ) from None
        finally:
            transport.close()
        location = resp.headers.get("location")
        if 300 <= resp.status < 400 and location:
            target = urllib.parse.urljoin(target, location)
            if not target.startswith(("http://", "https://")):
                raise AttachmentError(
                    f"attachment {url} redirects to {target!r}, not an http(s) URL",
                    hint="give the image's final http(s) URL",
                )
            continue
        if resp.status >= 300:
            raise AttachmentError(
                f"attachment {url}: the server answered {resp.status}", hint="check the URL"
            )
        ctype = resp.headers.get("content-type", "").split(";")[0].strip() or None
        return _checked(url, resp.body, ctype, max_bytes)
    raise AttachmentError(
        f"attachment {url} redirects more than {MAX_REDIRECTS} times",
        hint="give the image's final URL",
    )


def _checked(source: str, data: bytes, declared: str | None, max_bytes: int) -> Attachment:
    if len(data) > max_bytes:
        raise AttachmentError(
            f"attachment {source} is {len(data)} bytes, over the limit of {max_bytes}",
            hint="resize or compress the image",
        )
    mime = sniff(data)  # the bytes decide: a name or a Content-Type can be wrong
    if mime is None:
        said = f"; its name or server says {declared}" if declared else ""
        raise AttachmentError(
            f"attachment {source} is not an image llmcore can send (its bytes are not "
            f"PNG, JPEG, GIF or WebP{said})",
            hint="attach PNG, JPEG, GIF or WebP images",
        )
    return Attachment(source=source, mime=mime, data=data)


def attach(
    messages: list[Message], items: list[Any], max_bytes: int = MAX_BYTES
) -> list[Attachment]:
    """Load ``items`` and put them on the last user message (in place); return them."""
    loaded = [load(i, max_bytes) for i in items]
    if not loaded:
        return loaded
    target = next((m for m in reversed(messages) if m.role == "user"), None)
    if target is None:
        raise AttachmentError(
            "attachments need a user message to go with", hint="give a prompt with the attachment"
        )
    target.images = [*(target.images or []), *(a.data_url for a in loaded)]
    return loaded


def has_images(request: Any) -> bool:
    return any(m.images for m in getattr(request, "messages", ()))


def for_ollama(request: ChatRequest) -> ChatRequest:
    """Ollama's ``images`` are bare base64: strip the ``data:`` prefix (a copy, so other
    candidates still get the data URL)."""
    if not has_images(request):
        return request
    msgs = [
        attrs.evolve(
            m, images=[i.partition(",")[2] if i.startswith("data:") else i for i in m.images]
        )
        if m.images
        else m
        for m in request.messages
    ]
    return attrs.evolve(request, messages=msgs)
