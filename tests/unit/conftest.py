"""The unit tier needs no service. It offers no fixture of the services (asking for `database_url`,
`broker` or `settings` here is an error), and a test that reaches one anyway fails."""
from __future__ import annotations

from collections.abc import Iterator

import croniter  # noqa: F401  (its import runs `file` once to learn the word size: not a test's doing)
import pytest
from hypothesis import settings

# Properties are checked for what they hold, not for how fast an example runs: hypothesis's default
# 200 ms deadline failed an example on a machine loaded by other work.
settings.register_profile("unit", deadline=None)
settings.load_profile("unit")

from tests.support.no_services import guard


@pytest.fixture(autouse=True)
def no_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    reached = guard(monkeypatch)
    yield reached
    if reached:
        pytest.fail("a unit test reached what only integration and e2e tests may: " + "; ".join(reached),
                    pytrace=False)
