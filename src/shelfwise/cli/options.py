"""Parsing helpers shared by the commands."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from shelfwise.errors import ConfigError


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["a=b", "c=d"]`` → ``{"a": "b", "c": "d"}``; a malformed pair names the option."""
    pairs: dict[str, str] = {}
    for value in values or []:
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, target = part.partition("=")
            if not sep or not key.strip() or not target.strip():
                raise ConfigError(f"{option} takes FIELD=VALUE pairs. Got {part!r} instead.")
            pairs[key.strip()] = target.strip()
    return pairs


def parse_value(raw: str) -> object:
    """A --param value as JSON where it parses (numbers, true/false, null), else as a string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_params(values: list[str] | None, option: str = "--param") -> dict[str, object]:
    """``["max_seconds=120"]`` → ``{"max_seconds": 120}`` (values as `parse_value` reads them)."""
    return {key: parse_value(value) for key, value in parse_pairs(values, option).items()}


def parse_model_params(values: list[str] | None, models: list[str]) -> dict[str, dict[str, object]]:
    """``["sequential.max_seconds=120"]`` → ``{"sequential": {"max_seconds": 120}}``; the model must be
    one of `models` (those being run)."""
    out: dict[str, dict[str, object]] = {}
    for key, value in parse_params(values).items():
        model, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(f"--param takes MODEL.NAME=VALUE, e.g. sequential.max_seconds=120. Got {key!r}.")
        if model not in models:
            raise ConfigError(f"--param {key}: {model!r} is not among the models run ({', '.join(models)}).")
        out.setdefault(model, {})[name] = value
    return out


def parse_weights(values: list[str] | None) -> dict[str, float]:
    weights = {}
    for key, raw in parse_pairs(values, "--event-weight").items():
        try:
            weights[key] = float(raw)
        except ValueError:
            raise ConfigError(f"--event-weight {key}={raw!r}: the weight must be a number.") from None
    return weights


def split_names(value: str, option: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"{option} needs at least one name.")
    return names


EXECUTION_BACKENDS = ("local", "ray")


def check_backend(backend: str, option: str = "--backend") -> str:
    name = backend.strip().lower()
    if name not in EXECUTION_BACKENDS:
        raise ConfigError(f"{option} must be one of {list(EXECUTION_BACKENDS)}. Got {backend!r} instead.")
    return name


#: The options every command with a Ray backend takes (besides its own --backend).
Workers = Annotated[int, typer.Option("--workers", min=1, help="Ray workers (with --backend ray).")]
RayAddress = Annotated[
    str | None, typer.Option("--ray-address", help="An existing Ray cluster (default: a local one).")
]


#: The --store help every command that opens a store shows (the default is `settings.Settings.store`).
STORE_HELP = (
    "Store URL: sqlite:///path/to/shop.db or postgresql://user@host:5432/db "
    "(default: SHELFWISE_STORE, else SQLite at <home>/store.db, home being SHELFWISE_HOME or ~/.shelfwise)."
)
#: The models `--models` takes (a test checks them against the registry, which imports torch).
MODEL_NAMES = "popularity, itemknn, als, bpr, ease, mf, content, sequential"
