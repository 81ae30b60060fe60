"""Connecting to Ray: a local instance by default, or an existing cluster by address."""

from __future__ import annotations

import logging
import os

from shelfwise.errors import ConfigError

logger = logging.getLogger(__name__)


def require_ray():
    """The `ray` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "The Ray backend needs the 'distributed' extra: pip install 'shelfwise[distributed]'."
        ) from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None):
    """Join Ray once per process: `address` (``auto``, ``ray://host:port``, ``host:port``) or, when
    None, a local instance with `num_cpus` CPUs (default: all). Returns the `ray` module."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # the workers run shelfwise too: they must not download weights either
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    env = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}
    options = {"runtime_env": env, "ignore_reinit_error": True, "log_to_driver": False}
    if address is None:
        options.update(num_cpus=num_cpus, include_dashboard=False)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise ConfigError(f"--ray-address {address!r}: no Ray cluster answered ({exc}).") from None
    logger.info("ray: %s", ray.cluster_resources())
    return ray
