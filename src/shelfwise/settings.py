"""Settings: defaults, then a TOML file, then `SHELFWISE_*` environment variables; validated once.

Build them with `load_settings()`; nothing here runs at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shelfwise.errors import ConfigError

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_data_dir() -> Path:
    """`../shared/data` beside the repository (or beside the working directory)."""
    for candidate in (_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return _REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Every field can be set as `SHELFWISE_<FIELD>` in the environment."""

    data_dir: Path
    home: Path
    progress: bool = True
    seed: int = 42
    encoder: str = "default"
    #: Store URL (empty: SQLite at ``<home>/store.db``).
    store: str = ""
    #: Key for write and admin endpoints (``Authorization: Bearer KEY``).
    api_key: str = ""
    #: A key that may only post events (``POST /v1/events``): safe in a storefront's page, which the
    #: web page reads it from (``GET /v1/page-config``). Empty: none.
    events_key: str = ""
    #: A key that may only read, where reads need a key (`read_auth`). Empty: none.
    read_key: str = ""
    #: The catalog's currency (ISO 4217, such as GBP), which the web page shows prices in. Empty: none.
    currency: str = ""
    #: ``development`` or ``production``; production refuses placeholder keys.
    environment: str = "development"
    #: Whether read endpoints need the key too.
    read_auth: bool = False
    #: Largest request body in bytes, and most events or items in one batch.
    max_body_bytes: int = 1_048_576
    max_batch: int = 1000
    #: Query vectors each served model keeps for histories it has seen (0: none; see `Generation`).
    query_cache: int = 8192

    @property
    def datasets_available(self) -> bool:
        return self.data_dir.is_dir()


def _coerce(name: str, raw: object, kind: type) -> object:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"Setting '{name}' must be a boolean (true/false). Got {raw!r} instead.")
    if kind is int:
        try:
            return int(str(raw))
        except ValueError:
            raise ConfigError(f"Setting '{name}' must be an integer. Got {raw!r} instead.") from None
    if kind is Path:
        return Path(str(raw)).expanduser()
    return raw


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: object) -> Settings:
    """Build the settings: defaults → `config_file` (TOML, or `SHELFWISE_CONFIG`) → environment → overrides."""
    types = {
        "data_dir": Path,
        "home": Path,
        "progress": bool,
        "seed": int,
        "encoder": str,
        "store": str,
        "api_key": str,
        "events_key": str,
        "read_key": str,
        "currency": str,
        "environment": str,
        "read_auth": bool,
        "max_body_bytes": int,
        "max_batch": int,
        "query_cache": int,
    }
    values: dict[str, object] = {
        "data_dir": _default_data_dir(),
        "home": Path.home() / ".shelfwise",
    }
    path = config_file or os.environ.get("SHELFWISE_CONFIG")
    if path:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            with open(path, "rb") as handle:
                loaded = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"Settings file {path} does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Settings file {path} is not valid TOML: {exc}") from None
        values.update(loaded.get("shelfwise", loaded))
    for name in types:
        env = os.environ.get(f"SHELFWISE_{name.upper()}")
        if env is not None and env != "":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"Unknown setting(s) {unknown}; valid settings are {sorted(types)}.")
    coerced = {name: _coerce(name, value, types[name]) for name, value in values.items()}
    if coerced.get("environment", "development") not in ("development", "production"):
        raise ConfigError(
            f"Setting 'environment' must be 'development' or 'production'. Got {coerced['environment']!r}."
        )
    for name in ("max_body_bytes", "max_batch"):
        if name in coerced and int(coerced[name]) < 1:  # type: ignore[call-overload]
            raise ConfigError(f"Setting {name!r} must be a positive integer. Got {coerced[name]!r} instead.")
    if int(coerced.get("query_cache", 0)) < 0:  # type: ignore[call-overload]
        raise ConfigError(f"Setting 'query_cache' must be 0 or more. Got {coerced['query_cache']!r} instead.")
    return Settings(**coerced)  # type: ignore[arg-type]
