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


def check_scoped_keys(admin: str, scoped: dict[str, str], environment: str) -> dict[str, str]:
    """The scoped keys that are set (``{"events_key": ..., "read_key": ...}``), each held to what
    `check_key` asks of the admin key in production, and none equal to another: a key names its scope."""
    given = {name: key for name, key in scoped.items() if key}
    for name, key in given.items():
        try:
            check_key(key, environment)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("SHELFWISE_API_KEY", f"SHELFWISE_{name.upper()}")) from None
    keys = [admin, *given.values()]
    if len(set(keys)) < len(keys):
        raise ConfigError("SHELFWISE_API_KEY, SHELFWISE_EVENTS_KEY and SHELFWISE_READ_KEY must differ from each other.")
    return given


class KeyCheck:
    """A FastAPI dependency: 401 unless ``Authorization: Bearer <key>`` carries one of the keys (the
    admin key, and the keys scoped to what the route does)."""

    def __init__(self, *keys: str, required: bool = True) -> None:
        self._keys = [key.encode() for key in keys if key]
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
        offered = given.strip().encode()
        # every key compared, each in constant time: how long a refusal takes says nothing of which key came near
        if not sum(hmac.compare_digest(offered, key) for key in self._keys):
            raise HTTPException(status_code=401, detail="invalid API key", headers={"WWW-Authenticate": "Bearer"})
