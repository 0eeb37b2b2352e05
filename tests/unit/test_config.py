"""Config: precedence of arguments > environment > sentinelhub-py file > defaults; masking."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from xasync._contract import API_PATH_LEGACY, API_PATH_PLANET
from xasync.config import CDSE, SENTINEL_HUB, Config, default_config_file
from xasync.errors import ConfigError, XasyncError

ENV_VARS = ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_BASE_URL", "SH_TOKEN_URL", "SH_PROFILE")
SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No credentials from the developer's machine: empty env, config home in tmp."""
    for var in (*ENV_VARS, "XASYNC_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write_sh_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xdg" / "sentinelhub" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


FILE = """
[default-profile]
sh_client_id = "file-id"
sh_client_secret = "file-secret"
sh_base_url = "https://file.example.com"
sh_token_url = "https://file.example.com/token"

[cdse]
sh_client_id = "cdse-id"
sh_client_secret = "cdse-secret"
sh_base_url = "https://sh.dataspace.copernicus.eu"
"""


def test_defaults_are_sentinel_hub_without_credentials():
    cfg = Config.resolve()
    assert cfg.base_url == SENTINEL_HUB.base_url == "https://services.sentinel-hub.com"
    assert cfg.token_url.endswith("/auth/realms/main/protocol/openid-connect/token")
    assert cfg.api_path == API_PATH_LEGACY
    assert cfg.timeout == 30.0
    assert cfg.client_id is None
    assert not cfg.has_credentials


def test_missing_credentials_error_names_env_vars():
    cfg = Config.resolve(client_id="only-id")
    with pytest.raises(ConfigError) as info:
        cfg.require_credentials()
    msg = str(info.value)
    assert "SH_CLIENT_SECRET" in msg
    assert "SH_CLIENT_ID and SH_CLIENT_SECRET" in msg
    assert isinstance(info.value, XasyncError)


def test_file_profile_is_read_from_xdg_config_home(tmp_path):
    path = write_sh_config(tmp_path, FILE)
    assert default_config_file() == path
    cfg = Config.resolve()
    assert (cfg.client_id, cfg.client_secret) == ("file-id", "file-secret")
    assert cfg.base_url == "https://file.example.com"
    assert cfg.token_url == "https://file.example.com/token"


def test_env_beats_file_and_arguments_beat_env(tmp_path, monkeypatch):
    write_sh_config(tmp_path, FILE)
    monkeypatch.setenv("SH_CLIENT_ID", "env-id")
    monkeypatch.setenv("SH_CLIENT_SECRET", "env-secret")
    monkeypatch.setenv("XASYNC_CONCURRENCY", "3")
    cfg = Config.resolve()
    assert (cfg.client_id, cfg.client_secret) == ("env-id", "env-secret")
    assert cfg.base_url == "https://file.example.com"  # not in env: from the file
    assert cfg.concurrency == 3

    cfg = Config.resolve(client_id="arg-id", base_url="http://127.0.0.1:1/", concurrency=None)
    assert cfg.client_id == "arg-id"
    assert cfg.client_secret == "env-secret"
    assert cfg.base_url == "http://127.0.0.1:1"  # trailing slash dropped
    assert cfg.concurrency == 3  # None means "not given"


def test_profile_from_argument_and_env(tmp_path, monkeypatch):
    write_sh_config(tmp_path, FILE)
    cfg = Config.resolve(profile="cdse")
    assert cfg.client_id == "cdse-id"
    # no token URL in the profile: the CDSE base URL brings the CDSE token endpoint
    assert cfg.base_url == CDSE.base_url
    assert cfg.token_url == CDSE.token_url
    monkeypatch.setenv("SH_PROFILE", "cdse")
    assert Config.resolve().client_id == "cdse-id"
    assert Config.resolve(profile="default-profile").client_id == "file-id"


def test_named_profile_missing_is_an_error(tmp_path):
    write_sh_config(tmp_path, FILE)
    with pytest.raises(ConfigError, match="profile 'nope' not found"):
        Config.resolve(profile="nope")


def test_broken_toml_and_missing_explicit_file(tmp_path):
    write_sh_config(tmp_path, "[default-profile\nsh_client_id = ")
    with pytest.raises(ConfigError, match="cannot read"):
        Config.resolve()
    with pytest.raises(ConfigError, match="does not exist"):
        Config.resolve(config_file=tmp_path / "absent.toml")


def test_env_base_url_cdse_brings_cdse_token_url(monkeypatch):
    monkeypatch.setenv("SH_BASE_URL", "https://sh.dataspace.copernicus.eu")
    cfg = Config.resolve()
    assert cfg.token_url == (
        "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
    )


def test_cdse_preset_with_credentials():
    cfg = CDSE.with_overrides(client_id="a", client_secret=SECRET, api_path=API_PATH_PLANET)
    assert cfg.base_url == "https://sh.dataspace.copernicus.eu"
    assert cfg.api_path == API_PATH_PLANET
    assert cfg.has_credentials


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "ftp://x"),
        ("api_path", "/process/v1"),
        ("timeout", 0),
        ("concurrency", 0),
        ("concurrency", 2.5),
        ("max_retries", -1),
        ("backoff_base", "fast"),
    ],
)
def test_bad_values_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        Config.resolve(**{field: value})


def test_bad_env_concurrency_and_unknown_argument(monkeypatch):
    monkeypatch.setenv("XASYNC_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="XASYNC_CONCURRENCY"):
        Config.resolve()
    with pytest.raises(ConfigError, match="unknown"):
        Config.resolve(client_sekret="x")


def test_secret_never_in_repr_str_or_pickle():
    cfg = Config.resolve(client_id="id", client_secret=SECRET)
    for text in (repr(cfg), str(cfg), f"{cfg}", repr([cfg])):
        assert SECRET not in text
        assert "client_secret='***'" in text
    assert "client_secret=None" in repr(Config.resolve())
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(cfg)


def test_secret_not_in_error_for_bad_secret_type():
    with pytest.raises(ConfigError) as info:
        Config.resolve(client_id="id", client_secret=12345678901)
    assert "12345678901" not in str(info.value)
