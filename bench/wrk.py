"""Maximum throughput with wrk: fixed keep-alive connections posting pre-signed bodies in a closed loop."""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import Post

MARKER = "WRK_JSON "

# Pre-formatted requests, so wrk's Lua does no work per request beyond picking the next one.
SCRIPT = """\
local posts = {%(posts)s}
local wires = {}
local next_index = 0

init = function(args)
  for i, post in ipairs(posts) do
    wires[i] = wrk.format("POST", post.path, post.headers, post.body)
  end
end

request = function()
  next_index = next_index %% #wires + 1
  return wires[next_index]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests":%%d,"duration_us":%%d,"status_errors":%%d,"socket_errors":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """wrk's count of answers; `status_errors` are the answers with a status of 400 or more."""

    requests: int
    status_errors: int
    socket_errors: int
    duration_s: float

    @property
    def successes(self) -> int:
        return self.requests - self.status_errors


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    output = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout
    return " ".join(output.split()[:2]) or "wrk"


def _lua_string(data: bytes) -> str:
    # Decimal escapes keep any byte intact; Lua strings are 8-bit clean.
    return '"' + "".join(
        chr(b) if 32 <= b < 127 and b not in b'\\"' else f"\\{b:03d}" for b in data
    ) + '"'


def _lua_post(post: Post) -> str:
    headers = ", ".join(f"[{_lua_string(k.encode())}] = {_lua_string(v.encode())}" for k, v in post.headers.items())
    return f"{{path = {_lua_string(post.path.encode())}, headers = {{{headers}}}, body = {_lua_string(post.body)}}}"


def write_script(posts: Sequence[Post], path: Path) -> Path:
    path.write_text(SCRIPT % {"posts": ",\n  ".join(_lua_post(p) for p in posts), "marker": MARKER})
    return path


def run_wrk(url: str, script: Path, duration_s: float, connections: int, threads: int) -> WrkResult:
    """Run wrk once against `url` and read the figures its `done` hook prints."""
    command = [
        "wrk", f"--threads={min(threads, connections)}", f"--connections={connections}",
        f"--duration={max(1, round(duration_s))}s", "--timeout=10s", f"--script={script}", url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    for line in completed.stdout.splitlines():
        if line.startswith(MARKER):
            figures = json.loads(line.removeprefix(MARKER))
            return WrkResult(
                requests=figures["requests"],
                status_errors=figures["status_errors"],
                socket_errors=figures["socket_errors"],
                duration_s=figures["duration_us"] / 1e6,
            )
    raise RuntimeError(f"wrk printed no figures:\n{completed.stdout}\n{completed.stderr}")
