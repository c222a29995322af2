"""Images in a chat request: OpenAI `image_url` parts → checked image bytes.

Only `data:` URLs (base64) are read: the worker fetches nothing from the network, so a
request cannot make it reach another host. The daemon's Ollama and Anthropic dialects
send their base64 images in this form. An image must be one of `FORMATS`, at most the
worker's MLXCTL_MAX_IMAGE_BYTES once decoded, and openable by Pillow; anything else is
a 400 naming the part.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from mlxctl.worker.openai_errors import APIError, invalid_request

__all__ = ["FORMATS", "image_bytes"]

# What Pillow reads and every dialect's clients send.
FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP"})


def image_bytes(part: dict[str, Any], where: str, max_bytes: int) -> bytes:
    """The bytes of an `image_url` part (`{"url": "data:image/png;base64,..."}`)."""
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise invalid_request(f"'{where}.image_url.url' must be a string", where)
    if not url.startswith("data:"):
        raise invalid_request(
            f"'{where}' is an image URL; send the image inline as a base64 data URL "
            "(data:image/png;base64,...): the worker does not fetch URLs.",
            where,
            code="unsupported_image_url",
        )
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise invalid_request(f"'{where}' is not a base64 data URL", where)
    # Four base64 characters carry three bytes: refuse before decoding a huge payload.
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise _too_large(where, max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(f"'{where}' is not valid base64", where) from None
    if len(data) > max_bytes:
        raise _too_large(where, max_bytes)
    check_image(data, where)
    return data


def check_image(data: bytes, where: str) -> None:
    """A 400 unless Pillow reads `data` as an image in one of `FORMATS`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise invalid_request(
            f"'{where}' is not an image this server reads ({', '.join(sorted(FORMATS))}).",
            where,
            code="unsupported_image",
        ) from None
    if kind not in FORMATS:
        raise invalid_request(
            f"'{where}' is a {kind} image; send one of {', '.join(sorted(FORMATS))}.",
            where,
            code="unsupported_image",
        )


def _too_large(where: str, max_bytes: int) -> APIError:
    return invalid_request(
        f"'{where}' is larger than the {max_bytes} bytes an image may have "
        "(MLXCTL_MAX_IMAGE_BYTES).",
        where,
        code="image_too_large",
    )
