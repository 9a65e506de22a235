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

from .errors import LLMCoreError

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


def _download(url: str, max_bytes: int) -> Attachment:
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=30.0) as r:
            if r.status_code >= 400:
                raise AttachmentError(
                    f"attachment {url}: the server answered {r.status_code}", hint="check the URL"
                )
            buf = bytearray()
            for piece in r.iter_bytes():
                buf += piece
                if len(buf) > max_bytes:
                    raise AttachmentError(
                        f"attachment {url} is over the limit of {max_bytes} bytes",
                        hint="use a smaller image",
                    )
            ctype = r.headers.get("content-type", "").split(";")[0].strip() or None
    except httpx.HTTPError as exc:
        raise AttachmentError(
            f"attachment {url} could not be downloaded: {exc}", hint="check the URL and the network"
        ) from None
    return _checked(url, bytes(buf), ctype, max_bytes)


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
