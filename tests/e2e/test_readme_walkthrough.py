"""The README's five-minute walkthrough works as printed, against a running `erp-sync dev`.

Each line runs in bash, in a folder where `erp-sync dev` runs (its `.erp-sync.env` there, `.venv`
and `examples/` linked in), with no erp-sync setting in the environment: the walkthrough's
`source .erp-sync.env` must be all it needs. A line must exit 0 and print what its comment promises
(its `quoted` fragments); a line that only reads is retried while the workers catch up.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support import cli
from tests.support.readme import ROOT, is_definition, promised, walkthrough_lines
from tests.support.waiting import wait_for

READS = ("api ", ".venv/bin/erp-sync sandbox-erp orders", ".venv/bin/erp-sync orders list",
         ".venv/bin/erp-sync reconcile --dry-run")
CATCH_UP_S = 30


def test_every_walkthrough_command_works_as_printed(migrated_database_url, broker, tmp_path):
    # given `erp-sync dev` running in a folder like the repository's root, on free ports
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    ports = [str(cli.free_port()) for _ in range(3)]
    dev = cli.start("dev", "--port", ports[0], "--api-port", ports[1], "--sandbox-port", ports[2], cwd=tmp_path,
                    ERP_SYNC_ENV_FILE=".erp-sync.env", DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                    INGRESS_THREADS="4", API_THREADS="4")
    try:
        wait_for(lambda: "ready in" in cli.output_of(dev) or dev.poll() is not None, timeout=120)
        assert dev.poll() is None, cli.output_of(dev)

        # when each line of the walkthrough runs in a second shell
        definitions: list[str] = []
        for printed in walkthrough_lines():
            line = printed.replace("/tmp/", f"{tmp_path}/")
            result = run_line(definitions, line, tmp_path, retry=line.startswith(READS))

            # then it exits 0 and prints what its comment says
            assert result.returncode == 0, (printed, result.stdout, result.stderr)
            for fragment in promised(printed):
                assert fragment in result.stdout, (printed, fragment, result.stdout, result.stderr)
            if is_definition(line):
                definitions.append(line)
    finally:
        cli.stop(dev)


def run_line(definitions: list[str], line: str, cwd: Path, retry: bool) -> subprocess.CompletedProcess[str]:
    env = cli.clean_env(PATH=os.environ["PATH"])
    script = "\n".join(["set -o pipefail", *definitions, line])
    deadline = time.monotonic() + (CATCH_UP_S if retry else 0)
    while True:
        result = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        kept = result.returncode == 0 and all(fragment in result.stdout for fragment in promised(line))
        if kept or time.monotonic() >= deadline:
            return result
        time.sleep(0.5)
