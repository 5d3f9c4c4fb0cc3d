"""erp-sync processes started as production starts them, on a test's settings, and stopped with SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from pydantic import SecretStr

from erp_sync.shared.settings import Settings
from tests.support import cli


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """`settings` as the environment variables a process reads them from."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            text = ",".join(v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in value)
        elif isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, Path):
            text = str(value)
        else:
            text = str(value)
        env[name.upper()] = text
    return env | extra


class Process:
    """One `erp-sync ...` process; `terminate()` sends SIGTERM and times the exit."""

    def __init__(self, settings: Settings, *args: str, **extra: str) -> None:
        self.args = args
        self.process = cli.start(*args, **settings_env(settings, **extra))

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, grace_s: float) -> tuple[int | None, float]:
        """SIGTERM, then wait up to `grace_s`: (exit status, or None if still running; seconds taken)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            status: int | None = self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            status = None
        return status, time.monotonic() - sent

    def output(self) -> str:
        return cli.output_of(self.process)

    def kill(self) -> None:
        """SIGKILL what is still running (the end of a test, whatever happened)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        cli.stop(self.process)
