from pathlib import Path

import pytest

from shelfwise.errors import ConfigError
from shelfwise.settings import load_settings


def test_environment_overrides_file_overrides_defaults(tmp_path, monkeypatch):
    config = tmp_path / "shelfwise.toml"
    config.write_text('[shelfwise]\nseed = 7\ndata_dir = "/from/file"\n')
    monkeypatch.setenv("SHELFWISE_DATA_DIR", "/from/env")
    settings = load_settings(config)
    assert settings.seed == 7
    assert settings.data_dir == Path("/from/env")
    assert load_settings(config, seed=9).seed == 9


def test_bad_settings_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SHELFWISE_SEED", "many")
    with pytest.raises(ConfigError, match="'seed' must be an integer"):
        load_settings()
    monkeypatch.delenv("SHELFWISE_SEED")
    config = tmp_path / "bad.toml"
    config.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match=r"Unknown setting\(s\) \['colour'\]"):
        load_settings(config)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    monkeypatch.setenv("SHELFWISE_QUERY_CACHE", "-1")
    with pytest.raises(ConfigError, match="'query_cache' must be 0 or more"):
        load_settings()
    monkeypatch.setenv("SHELFWISE_QUERY_CACHE", "0")
    assert load_settings().query_cache == 0
