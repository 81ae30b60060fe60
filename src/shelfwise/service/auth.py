"""API keys: compared in constant time; placeholder keys refused outside development."""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

from shelfwise.errors import ConfigError

PLACEHOLDER_KEYS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "password",
        "test",
        "dev",
        "development",
        "apikey",
        "api-key",
        "api_key",
        "your-api-key",
        "placeholder",
        "example",
        "xxx",
        "key",
    }
)
MIN_KEY_LENGTH = 16


def check_key(key: str, environment: str) -> str:
    """The key to use. In production a missing, short or placeholder key is refused; in development
    a missing key is replaced by a random one (printed by `shelfwise serve`)."""
    if environment == "production":
        if not key:
            raise ConfigError("SHELFWISE_API_KEY must be set in production.")
        if key.strip().lower() in PLACEHOLDER_KEYS or len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"SHELFWISE_API_KEY looks like a placeholder; in production use a random key of at least "
                f"{MIN_KEY_LENGTH} characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
            )
        return key
    return key or secrets.token_urlsafe(32)


class KeyCheck:
    """A FastAPI dependency: 401 unless ``Authorization: Bearer <key>`` carries the key."""

    def __init__(self, key: str, *, required: bool = True) -> None:
        self._key = key.encode()
        self.required = required

    def __call__(self, request: Request) -> None:
        if not self.required:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                status_code=401,
                detail="missing API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.strip().encode(), self._key):
            raise HTTPException(status_code=401, detail="invalid API key", headers={"WWW-Authenticate": "Bearer"})
