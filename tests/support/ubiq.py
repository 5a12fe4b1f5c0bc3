"""Helpers for driving the official Ubiq client in tests."""

from __future__ import annotations

import contextlib
import json
import urllib.error
from pathlib import Path

import pytest


def assert_http_error(caught: pytest.ExceptionInfo[urllib.error.HTTPError], status: int) -> None:
    """The client raised HTTPError with ``status``.

    The client builds HTTPError with the response *bytes* as its file object, so the error's
    finaliser fails ("Exception ignored in tempfile") whenever it is garbage-collected.
    Closing it here, deterministically, marks it closed so that the finaliser does nothing.
    """
    error = caught.value
    with contextlib.suppress(AttributeError):
        error.close()
    assert error.code == status, f"{error.code} {error.msg}"


def uncached_config(directory: Path) -> str:
    """A client configuration file under which every call reaches the server: events
    reported synchronously (each one-shot call flushes them), no key caching."""
    path = directory / "ubiq-configuration.json"
    path.write_text(
        json.dumps(
            {
                "event_reporting": {
                    "synchronous": True,
                    "minimum_count": 1,
                    "flush_interval": 1,
                    "trap_exceptions": False,
                },
                "key_caching": {"structured": False, "unstructured": False},
            }
        )
    )
    return str(path)
