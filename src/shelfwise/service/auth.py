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
#: Production keys: at least this many characters, of at least `MIN_KEY_DISTINCT` different ones
#: (``secrets.token_urlsafe(32)`` gives 43 characters of 64 kinds; ``aaaa…`` has one).
MIN_KEY_LENGTH = 32
MIN_KEY_DISTINCT = 12
_HOW = "use a random key, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"


def check_key(key: str, environment: str) -> str:
    """The key to use. In production a missing, short, repetitive or placeholder key is refused
    (`ConfigError`, before anything is loaded: `shelfwise serve` checks first); in development a
    missing key is replaced by a random one (printed by `shelfwise serve`)."""
    if environment != "production":
        return key or secrets.token_urlsafe(32)
    if not key:
        raise ConfigError(f"SHELFWISE_API_KEY must be set in production; {_HOW}.")
    if key.strip().lower() in PLACEHOLDER_KEYS:
        raise ConfigError(f"SHELFWISE_API_KEY is a placeholder; in production {_HOW}.")
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"SHELFWISE_API_KEY has {len(key)} characters; production needs at least {MIN_KEY_LENGTH}: {_HOW}."
        )
    if len(set(key)) < MIN_KEY_DISTINCT:
        raise ConfigError(
            f"SHELFWISE_API_KEY uses only {len(set(key))} different characters; production needs at least "
            f"{MIN_KEY_DISTINCT}: {_HOW}."
        )
    return key


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
