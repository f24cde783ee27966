"""The embedded local stack never serves without API keys beyond loopback."""

from __future__ import annotations

import pytest

from serve_app.cli.local_stack import local_stack
from serve_app.config import ServeConfig


def test_no_auth_beyond_loopback_is_refused_before_anything_starts() -> None:
    settings = ServeConfig.load(None).settings({"security": {"auth": "disabled"}, "serve": {"host": "0.0.0.0"}})
    with pytest.raises(ValueError, match="refusing to serve without auth on 0.0.0.0"), local_stack(settings):
        pytest.fail("the stack must not start")
