"""Config: precedence of arguments > environment > sentinelhub-py file > defaults; masking;
deployment presets (endpoints, storage options, delivery refusals)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from xasync import deployments
from xasync._contract import API_PATH_LEGACY, API_PATH_PLANET
from xasync.config import CDSE, SENTINEL_HUB, SENTINEL_HUB_US_WEST, Config, default_config_file
from xasync.errors import ConfigError, ValidationError, XasyncError

ENV_VARS = (
    "SH_CLIENT_ID",
    "SH_CLIENT_SECRET",
    "SH_BASE_URL",
    "SH_TOKEN_URL",
    "SH_PROFILE",
    "SH_DEPLOYMENT",
)
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


# -- deployments --------------------------------------------------------------------------------
SH_TOKEN = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
CDSE_TOKEN = (
    "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
)
#: name -> (base URL, token URL, path style): spec sections 1.1, 1.2 and 4.
ENDPOINTS = {
    "sentinel-hub-eu": ("https://services.sentinel-hub.com", SH_TOKEN, API_PATH_LEGACY),
    "sentinel-hub-us-west": (
        "https://services-uswest2.sentinel-hub.com",
        SH_TOKEN,
        API_PATH_LEGACY,
    ),
    "cdse": ("https://sh.dataspace.copernicus.eu", CDSE_TOKEN, API_PATH_LEGACY),
}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_each_deployment_by_argument_and_by_env(name, monkeypatch):
    base, token, path = ENDPOINTS[name]
    by_arg = Config.resolve(deployment=name)
    monkeypatch.setenv("SH_DEPLOYMENT", name.upper())
    by_env = Config.resolve()
    for cfg in (by_arg, by_env):
        assert (cfg.base_url, cfg.token_url, cfg.api_path) == (base, token, path)
        assert cfg.deployment == name
        assert cfg.preset is deployments.DEPLOYMENTS[name]


def test_module_presets_match_the_named_deployments():
    assert Config.resolve(deployment="sentinel-hub-eu") == SENTINEL_HUB
    assert Config.resolve(deployment="us-west") == SENTINEL_HUB_US_WEST
    assert Config.resolve(deployment="cdse") == CDSE
    assert Config.resolve().deployment == "sentinel-hub-eu"  # the default


def test_aliases_and_unknown_names():
    assert deployments.deployment("Sentinel-Hub").name == "sentinel-hub-eu"
    assert deployments.deployment(" copernicus ").name == "cdse"
    assert deployments.deployment("uswest2").name == "sentinel-hub-us-west"
    with pytest.raises(ConfigError, match="cdse") as info:
        Config.resolve(deployment="mars")
    assert "mars" in str(info.value)
    with pytest.raises(ConfigError, match="unknown deployment"):
        Config(base_url="https://x.example", token_url="https://x.example/t", deployment="mars")


def test_named_deployment_beats_env_and_file_endpoints_but_not_arguments(tmp_path, monkeypatch):
    write_sh_config(tmp_path, FILE)  # default profile: file endpoints and credentials
    monkeypatch.setenv("SH_BASE_URL", "https://env.example.com")
    cfg = Config.resolve(deployment="cdse")
    assert (cfg.base_url, cfg.token_url) == ENDPOINTS["cdse"][:2]
    assert (cfg.client_id, cfg.client_secret) == ("file-id", "file-secret")  # still from the file
    monkeypatch.setenv("SH_CLIENT_ID", "env-id")
    assert Config.resolve(deployment="cdse").client_id == "env-id"
    # explicit arguments still win, and the deployment's rules stay
    pointed = Config.resolve(deployment="cdse", base_url="http://127.0.0.1:9999")
    assert pointed.base_url == "http://127.0.0.1:9999"
    assert pointed.token_url == CDSE_TOKEN
    assert pointed.deployment == "cdse"


def test_deployment_is_inferred_from_the_base_url(monkeypatch):
    monkeypatch.setenv("SH_BASE_URL", "https://services-uswest2.sentinel-hub.com/")
    cfg = Config.resolve()
    assert cfg.deployment == "sentinel-hub-us-west"
    assert cfg.token_url == SH_TOKEN
    emulator_like = Config(base_url="http://127.0.0.1:5000", token_url="http://127.0.0.1:5000/t")
    assert emulator_like.deployment is None and emulator_like.preset is None


@pytest.mark.parametrize(
    ("name", "delivery", "role", "refused"),
    [
        ("cdse", "gs://bucket/prefix", None, "gs:// delivery"),
        ("cdse", "s3://bucket/prefix", "arn:aws:iam::123456789012:role/r", "iamRoleARN"),
        ("cdse", "s3://bucket/prefix", None, None),
        ("sentinel-hub-eu", "gs://bucket/prefix", None, None),
        ("sentinel-hub-us-west", "s3://b/p", "arn:aws:iam::123456789012:role/r", None),
        ("sentinel-hub-eu", "https://bucket/prefix", None, "s3:// or gs://"),
        ("cdse", "bucket/prefix", None, "s3:// or gs://"),
    ],
)
def test_delivery_refusals(name, delivery, role, refused):
    cfg = Config.resolve(deployment=name)
    if refused is None:
        cfg.check_delivery(delivery, iam_role_arn=role)
        return
    with pytest.raises(ValidationError, match=refused) as info:
        cfg.check_delivery(delivery, iam_role_arn=role)
    assert isinstance(info.value, XasyncError) and isinstance(info.value, ValueError)


def test_capabilities_of_each_preset():
    caps = {n: (d.supports_iam_role, d.supports_gcs) for n, d in deployments.DEPLOYMENTS.items()}
    assert caps == {
        "sentinel-hub-eu": (True, True),
        "sentinel-hub-us-west": (True, True),
        "cdse": (False, False),
    }


def test_cdse_rules_follow_a_config_pointed_at_another_server():
    """An emulator standing in for CDSE keeps CDSE's refusals."""
    cfg = Config(
        base_url="http://127.0.0.1:1", token_url="http://127.0.0.1:1/token", deployment="CDSE"
    )
    assert cfg.deployment == "cdse"
    with pytest.raises(ValidationError):
        cfg.check_delivery("gs://b/p")
    # without a deployment only the scheme is checked
    Config(base_url="http://127.0.0.1:1", token_url="http://127.0.0.1:1/t").check_delivery(
        "gs://b/p", iam_role_arn="arn:aws:iam::1:role/r"
    )


def test_storage_options_of_each_deployment():
    cdse = CDSE.storage_options("AK", SECRET)
    assert cdse == {
        "key": "AK",
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": "https://s3.waw3-1.cloudferro.com"},
    }
    assert SENTINEL_HUB.storage_options() == {}  # AWS: s3fs defaults
    assert SENTINEL_HUB_US_WEST.storage_options("AK", SECRET) == {"key": "AK", "secret": SECRET}
    merged = CDSE.storage_options(client_kwargs={"region_name": "x"}, anon=False)
    assert merged["client_kwargs"] == {
        "endpoint_url": "https://s3.waw3-1.cloudferro.com",
        "region_name": "x",
    }
    assert merged["anon"] is False
    with pytest.raises(ConfigError, match="both key and secret"):
        CDSE.storage_options(key="AK")


def test_storage_options_are_real_s3fs_arguments(s3_server, bucket):
    """The dict a preset builds opens a real S3 server (its endpoint overridden to moto's)."""
    import s3fs

    options = CDSE.storage_options(
        "testing-key", "testing-secret", client_kwargs={"endpoint_url": s3_server.endpoint_url}
    )
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**options)
    fs.pipe(f"{bucket}/probe.txt", b"ok")
    assert fs.cat(f"{bucket}/probe.txt") == b"ok"
    s3fs.S3FileSystem.clear_instance_cache()


def test_an_emulator_client_can_play_cdse(emu):
    """``Client.from_emulator(emu, deployment="cdse")``: the emulator's URLs, CDSE's refusals."""
    from xasync import Client

    with Client.from_emulator(emu, deployment="cdse") as client:
        assert client.config.base_url == emu.base_url
        assert client.config.deployment == "cdse"
        with pytest.raises(ValidationError, match="iamRoleARN"):
            client.config.check_delivery("s3://b/p", iam_role_arn="arn:aws:iam::1:role/r")
    with Client.from_emulator(emu) as plain:
        assert plain.config.deployment is None
