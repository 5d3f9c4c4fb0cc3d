"""The processes of `erp-sync dev`: started together, every output line tagged, stopped together."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO

# Colour and cursor codes (werkzeug colours its request lines): a tagged stream is plain text.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TAG_WIDTH = 9


class Output:
    """One stream for every process, each line prefixed with its process's name."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def line(self, tag: str, text: str) -> None:
        """Write one line under a tag, colour codes removed."""
        clean = _ANSI.sub("", text.rstrip("\r\n"))
        with self._lock:
            self._stream.write(f"{tag:<{TAG_WIDTH}}| {clean}\n")
            self._stream.flush()

    def copy(self, tag: str, pipe: IO[str]) -> None:
        """Copy a child's lines until it closes its end."""
        for text in iter(pipe.readline, ""):
            self.line(tag, text)
        pipe.close()


class Processes:
    """Named child processes of `erp-sync` itself, their output tagged in one stream."""

    def __init__(self, output: Output, env: Mapping[str, str]) -> None:
        self.output = output
        self.env = dict(env)
        self.children: dict[str, subprocess.Popen[str]] = {}
        self._copiers: list[threading.Thread] = []

    def start(self, name: str, arguments: list[str], env: Mapping[str, str] | None = None) -> None:
        """Start `erp-sync ARGUMENTS` under a name, with `env` over the shared environment."""
        # A process group of its own: Ctrl-C reaches dev alone, which stops each child once, with
        # SIGTERM; a second signal mid-shutdown (or mid-import) would cut a child short.
        child = subprocess.Popen([sys.executable, "-m", "erp_sync", *arguments], env=self.env | dict(env or {}),
                                 text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, errors="replace",
                                 process_group=0)
        assert child.stdout is not None
        copier = threading.Thread(target=self.output.copy, args=(name, child.stdout), daemon=True)
        copier.start()
        self._copiers.append(copier)
        self.children[name] = child
        self.output.line("dev", f"started {name} (pid {child.pid}): erp-sync {' '.join(arguments)}")

    def run(self, name: str, arguments: list[str]) -> int:
        """Run `erp-sync ARGUMENTS` to its end under a name; its exit code."""
        self.start(name, arguments)
        child = self.children.pop(name)
        code = child.wait()
        self._copiers.pop().join(timeout=2)
        self.output.line("dev", f"{name} done ({_describe(code)})")
        return code

    def exited(self) -> tuple[str, int] | None:
        """The first child found exited, with its code; None while all run."""
        for name, child in self.children.items():
            if child.poll() is not None:
                return name, child.returncode
        return None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to each child still running, then SIGKILL past the grace period."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, child in self.children.items():
            try:
                code = child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
                self.output.line("dev", f"{name} did not stop within {grace_s:.0f} s: killed")
                continue
            self.output.line("dev", f"{name} stopped ({_describe(code)})")
        for copier in self._copiers:
            copier.join(timeout=2)


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
