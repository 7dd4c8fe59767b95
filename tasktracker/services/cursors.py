"""Opaque, signed page cursors.

A cursor is the base64url JSON of what the server needs to continue a walk (the sort and the
last row's key values), with an HMAC so a client can neither forge nor edit one: a position
it was not given could otherwise skip past filters' intent or probe values of hidden rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from ..errors import InvalidInput

_SIGNATURE_BYTES = 16


class CursorCodec:
    """Signs and checks cursors with a key derived from the app secret and a purpose."""

    def __init__(self, secret: str, purpose: str) -> None:
        # A key of its own: a cursor signature can never be replayed as any other MAC.
        self._key = hmac.new(secret.encode(), f"cursor:{purpose}".encode(), hashlib.sha256).digest()

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body.decode()}.{_b64(self._sign(body)).decode()}"

    def decode(self, token: str, field: str = "cursor") -> dict[str, Any]:
        """The payload of a cursor this server issued; anything else is a 422 on ``field``."""
        body, _, signature = token.encode().partition(b".")
        try:
            valid = hmac.compare_digest(_unb64(signature), self._sign(body))
            payload = json.loads(_unb64(body)) if valid else None
        except (binascii.Error, ValueError):
            payload = None
        if not isinstance(payload, dict):
            raise InvalidInput(
                "The cursor was not issued by this server.",
                {field: ["Not a valid cursor; use next_cursor from a previous page."]},
            )
        return payload


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


@lru_cache(maxsize=8)
def cursor_codec(secret: str, purpose: str) -> CursorCodec:
    """A codec per (secret, purpose), built once per process."""
    return CursorCodec(secret, purpose)
