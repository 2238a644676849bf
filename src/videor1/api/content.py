"""A chat request's messages as our `Prompt`, with each media URL read through videor1.media.

What maps onto a `Prompt`: an optional system (or developer) message first, then one user turn with
at most one image or video before its text. Anything else is refused with a 400 that says why, never
dropped. Media URLs:
- `data:<mime>;base64,…` (image/* for image_url, video/* for video_url), decoded from a temporary file;
- `file:///abs/path` or `/abs/path`: only inside a `--media-root` after resolving symlinks (else 403);
- `http(s)://`: refused, this server fetches nothing.
Decoding uses the server's MediaConfig: a clip of N frames sent to a server run with `--frames N` and
the same pixel bounds comes out with the very same frames.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

from videor1.api.protocol import APIError, ChatRequest, ImagePart, Message, TextPart, VideoPart
from videor1.media.errors import MediaError
from videor1.media.image import read_image
from videor1.media.loader import MediaConfig
from videor1.media.video import Clip, read_video
from videor1.models.inputs import Prompt


@dataclass(frozen=True)
class MediaPolicy:
    """Where local media may come from (resolved directories; empty: no local paths) and how to decode."""

    roots: tuple[Path, ...]
    config: MediaConfig

    @classmethod
    def create(cls, roots: list[str | Path], config: MediaConfig) -> MediaPolicy:
        resolved = []
        for root in roots:
            path = Path(os.path.realpath(Path(root).expanduser()))
            if not path.is_dir():
                raise ValueError(f"media root {root} is not a directory")
            resolved.append(path)
        return cls(tuple(resolved), config)


def request_prompt(request: ChatRequest, policy: MediaPolicy) -> Prompt:
    """The `Prompt` of `request` (system message, question text, decoded media); APIError otherwise."""
    messages = request.messages
    system = None
    if messages[0].role in ("system", "developer"):
        system = _text_only(messages[0], "messages[0]")
        messages = messages[1:]
    offset = len(request.messages) - len(messages)
    for index, message in enumerate(messages, start=offset):
        if message.role != "user":
            what = ("multi-turn conversations (assistant messages)" if message.role == "assistant"
                    else "a system message after the first message")
            raise APIError(400, f"messages[{index}]: {what} not supported: send one user turn, optionally "
                                "after one system message", param=f"messages[{index}].role")
    if len(messages) != 1:
        raise APIError(400, f"expected exactly one user message, got {len(messages)}", param="messages")
    user, where = messages[0], f"messages[{offset}]"
    if isinstance(user.content, str):
        return Prompt(user.content, system=system)
    media = [(j, part) for j, part in enumerate(user.content) if not isinstance(part, TextPart)]
    if len(media) > 1:
        raise APIError(400, f"{where}: {len(media)} images/videos in one message; at most one is supported",
                       param=f"{where}.content")
    texts = [(j, part.text) for j, part in enumerate(user.content) if isinstance(part, TextPart)]
    if media and texts and texts[0][0] < media[0][0]:
        raise APIError(400, f"{where}: put the image or video part before the text: the prompt builder "
                            "places media first and would reorder yours", param=f"{where}.content")
    text = "".join(t for _, t in texts)  # consecutive text parts render back to back in the chat template
    if not media:
        return Prompt(text, system=system)
    j, part = media[0]
    loaded = load_part(part, f"{where}.content[{j}]", policy)
    return Prompt(text, video=loaded, system=system) if isinstance(part, VideoPart) else Prompt(
        text, image=loaded, system=system)


def _text_only(message: Message, where: str) -> str:
    if isinstance(message.content, str):
        return message.content
    if any(not isinstance(part, TextPart) for part in message.content):
        raise APIError(400, f"{where}: a system message may only hold text", param=f"{where}.content")
    return "".join(part.text for part in message.content)


def load_part(part: ImagePart | VideoPart, where: str, policy: MediaPolicy) -> Image.Image | Clip:
    """The decoded image or clip of one content part. APIError 400 (bad URL, bad data, media that
    does not decode: naming the part), 403 (a local path outside the media roots)."""
    kind = "video" if isinstance(part, VideoPart) else "image"
    url = (part.video_url if kind == "video" else part.image_url).url
    scheme = urlsplit(url).scheme.lower() if not url.startswith("/") else ""
    if scheme == "data":
        mime, data = parse_data_url(url, where)
        if not mime.startswith(f"{kind}/"):
            raise APIError(400, f"{where}: a {part.type} part needs a {kind}/* data URL, got {mime}",
                           param=where)
        with tempfile.TemporaryDirectory(prefix="videor1-serve-") as tmp:
            path = Path(tmp) / f"media{mimetypes.guess_extension(mime) or ''}"
            path.write_bytes(data)
            return _decode(path, kind, where, policy.config, shown=f"the {mime} data")
    if scheme in ("http", "https"):
        raise APIError(400, f"{where}: this server fetches nothing from the network; send the {kind} as a "
                            "data: URL, or as a path under one of its --media-root directories", param=where)
    if scheme not in ("", "file"):
        raise APIError(400, f"{where}: unsupported URL scheme {scheme!r} (data:, file:// or an absolute "
                            "path)", param=where)
    return _decode(confined_path(url, where, policy.roots), kind, where, policy.config, shown=url)


def parse_data_url(url: str, where: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a `data:<mime>[;params];base64,<data>` URL; APIError 400 otherwise."""
    header, comma, payload = url.partition(",")
    fields = header[len("data:"):].split(";")
    if not comma or "base64" not in fields[1:]:
        raise APIError(400, f"{where}: a data URL must read data:<mime>;base64,<data>", param=where)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise APIError(400, f"{where}: the data URL is not valid base64 ({error})", param=where) from None
    if not data:
        raise APIError(400, f"{where}: the data URL is empty", param=where)
    return fields[0].strip().lower() or "application/octet-stream", data


def confined_path(url: str, where: str, roots: tuple[Path, ...]) -> Path:
    """The real path (symlinks resolved) of a `file://` URL or absolute path, if inside one of `roots`."""
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise APIError(400, f"{where}: file URL on another host ({parts.netloc}) is not supported",
                           param=where)
        raw = unquote(parts.path)
    else:
        raw = url
    if "\x00" in raw:  # os.path.realpath would raise ValueError: an unshaped 500 that clients retry
        raise APIError(400, f"{where}: a local path may not contain a NUL character", param=where)
    if not Path(raw).is_absolute():
        raise APIError(400, f"{where}: a local path must be absolute (or a file:// URL), got {url!r}",
                       param=where)
    if not roots:
        raise APIError(403, f"{where}: local paths are refused: the server was started without --media-root",
                       param=where)
    real = Path(os.path.realpath(raw))
    if not any(real.is_relative_to(root) for root in roots):
        raise APIError(403, f"{where}: {url} is outside the server's media roots", param=where)
    return real


def _decode(path: Path, kind: str, where: str, config: MediaConfig, shown: str) -> Image.Image | Clip:
    try:
        if kind == "video":
            return read_video(path, config.sampling())
        return read_image(path, config.image_min_pixels, config.image_max_pixels, config.factor)
    except MediaError as error:  # named as the client named it, not by a temporary file's name
        reason = error.reason.replace(str(path), shown)
        raise APIError(400, f"{where}: {shown}: {reason}", param=where) from None
