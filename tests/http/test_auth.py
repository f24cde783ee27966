"""API keys: loading, the constant-time check, and the never-open-by-accident rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.config import SecuritySettings, Settings
from serve_app.errors import Unauthorized
from serve_app.http.auth import AuthConfigError, check_auth_configured, load_api_keys

KEY_A = "a" * 8 + "-first-test-key"
KEY_B = "b" * 8 + "-second-test-key"


def test_keys_from_env_string_and_file(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    secret.write_text(f"# rotated monthly\n\n  {KEY_B}  \n")
    keys = load_api_keys(SecuritySettings(api_keys=f" {KEY_A} ,", api_keys_file=secret))
    assert keys is not None and len(keys) == 2
    assert keys.verify(KEY_A) and keys.verify(KEY_B)
    assert not keys.verify(KEY_A[:-1]) and not keys.verify(KEY_A + "x") and not keys.verify("")


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authorization: Bearer"),
        ("", "Authorization: Bearer"),
        (f"Basic {KEY_A}", "Bearer scheme"),
        ("Bearer", "Bearer scheme"),
        ("Bearer wrong-key-of-some-length", "not valid"),
        (f"Bearer {KEY_A}x", "not valid"),
    ],
)
def test_check_refuses(header: str | None, detail: str) -> None:
    keys = load_api_keys(SecuritySettings(api_keys=KEY_A))
    assert keys is not None
    with pytest.raises(Unauthorized, match=detail):
        keys.check(header)


@pytest.mark.parametrize("header", [f"Bearer {KEY_A}", f"bearer   {KEY_A} ", f"BEARER {KEY_A}"])
def test_check_accepts(header: str) -> None:
    keys = load_api_keys(SecuritySettings(api_keys=KEY_A))
    assert keys is not None
    keys.check(header)


def test_required_without_keys_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="REELSERVE_API_KEYS"):
        check_auth_configured(SecuritySettings())
    with pytest.raises(AuthConfigError, match="REELSERVE_API_KEYS"):
        load_api_keys(SecuritySettings())
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(AuthConfigError, match="no API keys"):
        load_api_keys(SecuritySettings(api_keys_file=empty))
    with pytest.raises(AuthConfigError, match="cannot read"):
        load_api_keys(SecuritySettings(api_keys_file=tmp_path / "missing"))
    with pytest.raises(AuthConfigError, match="shorter than"):
        load_api_keys(SecuritySettings(api_keys="short"))


def test_disabled_only_when_asked() -> None:
    assert SecuritySettings().auth == "required"
    assert load_api_keys(SecuritySettings(auth="disabled")) is None
    check_auth_configured(SecuritySettings(auth="disabled"))


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELSERVE_API_KEYS", f"{KEY_A},{KEY_B}")
    monkeypatch.setenv("REELSERVE_SECURITY__URL_ALLOW_HOSTS", '["Media.Internal:8080"]')
    security = Settings(security={"url_resolver_overrides": {"Media.Internal": "10.0.0.7"}}).security
    assert security.api_keys is not None and security.api_keys.get_secret_value() == f"{KEY_A},{KEY_B}"
    assert KEY_A not in repr(security)  # SecretStr: never in logs or reprs
    assert security.url_allow_hosts == ["media.internal:8080"]
    assert security.url_resolver_overrides == {"media.internal": "10.0.0.7"}
    with pytest.raises(ValueError, match="not an IP address"):
        SecuritySettings(url_resolver_overrides={"a.test": "not-an-ip"})
