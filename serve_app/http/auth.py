"""API-key authentication: `Authorization: Bearer <key>`.

Keys come from `REELSERVE_API_KEYS` (comma-separated, via `security.api_keys`)
and/or `security.api_keys_file` (one per line). With `security.auth: required`
(the default) and no keys, `load_api_keys` fails, so the service never runs
open by accident; `auth: disabled` must be asked for.

A presented key is compared with every configured key, each time, through
SHA-256 digests and `hmac.compare_digest`: the time taken reveals neither
which key matched nor how long the keys are.

Public without a key: `PUBLIC_PATHS` (health checks, for load balancers and
Kubernetes probes; the web page) and FastAPI's `/docs` + `/openapi.json` (the API
description is published with the code anyway, and Swagger UI must load it
before the user can enter a key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from pathlib import Path

from serve_app.config import SecuritySettings
from serve_app.errors import Unauthorized

logger = logging.getLogger(__name__)

__all__ = ["PUBLIC_PATHS", "ApiKeys", "AuthConfigError", "check_auth_configured", "load_api_keys"]

# The web page (`/`) holds no data: it asks for a key before it shows any (its script and styles under
# `/web` are a mounted static app, outside this check).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/"})
MIN_KEY_LENGTH = 16
_FIX = (
    "set REELSERVE_API_KEYS (comma-separated) or security.api_keys_file, "
    "or set security.auth: disabled (REELSERVE_SECURITY__AUTH=disabled) for local development only"
)


class AuthConfigError(ValueError):
    """Auth is required but no usable key is configured."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured keys (as digests) and the check of a presented one."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in keys]
        if not self._digests:
            raise AuthConfigError(f"no API keys configured: {_FIX}")

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, presented: str) -> bool:
        """Constant-time: every configured key is compared, whatever matches."""
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched

    def derive_secret(self, purpose: bytes) -> bytes:
        """A secret for `purpose` that every replica with these keys derives alike (signing, not auth): it
        changes when the keys do."""
        return hmac.new(b"".join(sorted(self._digests)), b"reelserve:" + purpose, hashlib.sha256).digest()

    @staticmethod
    def principal(authorization: str | None) -> str:
        """Who a (checked) `Authorization` header speaks for, as a store-safe name: a digest of its key. Scopes
        what one caller names, e.g. Idempotency-Keys: two keys never share one."""
        _, _, token = (authorization or "").strip().partition(" ")
        return hashlib.sha256(b"reelserve-principal:" + token.strip().encode()).hexdigest()[:32]

    def check(self, authorization: str | None) -> None:
        """Raise `Unauthorized` unless the `Authorization` header carries a valid bearer key."""
        if not authorization:
            raise Unauthorized("send the API key as 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must use the Bearer scheme: 'Bearer <key>'")
        if not self.verify(token):
            raise Unauthorized("the API key is not valid")


def _split_keys(text: str, *, lines: bool) -> list[str]:
    parts = text.splitlines() if lines else text.split(",")
    keys = [p.strip() for p in parts]
    return [k for k in keys if k and not (lines and k.startswith("#"))]


def load_api_keys(security: SecuritySettings) -> ApiKeys | None:
    """The ingress's key set, or None when auth is explicitly disabled. Raises `AuthConfigError`."""
    if security.auth == "disabled":
        logger.warning("API authentication is DISABLED (security.auth: disabled); for local development only")
        return None
    keys = _split_keys(security.api_keys.get_secret_value(), lines=False) if security.api_keys else []
    if security.api_keys_file is not None:
        path = Path(security.api_keys_file)
        try:
            keys += _split_keys(path.read_text(), lines=True)
        except OSError as exc:
            raise AuthConfigError(f"cannot read security.api_keys_file {path}: {exc.strerror}") from None
    short = [k for k in keys if len(k) < MIN_KEY_LENGTH]
    if short:
        raise AuthConfigError(f"{len(short)} API key(s) shorter than {MIN_KEY_LENGTH} characters; use long random keys")
    api_keys = ApiKeys(keys)
    logger.info("API authentication required; %d key(s) configured", len(api_keys))
    return api_keys


def check_auth_configured(security: SecuritySettings) -> None:
    """Fail fast where the app is built: auth required but no key source at all."""
    if security.auth == "required" and not security.api_keys and security.api_keys_file is None:
        raise AuthConfigError(f"security.auth is 'required' but no API keys are configured: {_FIX}")
