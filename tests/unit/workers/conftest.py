"""Fixtures of the workers' unit tests: an image server of the test's own on loopback."""
from __future__ import annotations

from tests.support.image_server import image_server  # noqa: F401
