from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.image_server import ImageServer, running_image_server


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    with running_image_server() as server:
        yield server
