"""`erp-sync dev --story` plays the spec's story against real processes and passes every step."""
from __future__ import annotations

import re
import subprocess

from tests.support import cli

STEPS = ["the catalog arrives", "an in-store sale", "an online order", "the ERP goes down", "drift, and a sweep"]
# Everything starts, five steps of a few seconds each, everything stops: far under this.
STORY_TIMEOUT_S = 420


def test_the_story_plays_live_and_every_step_passes(migrated_database_url, broker, committed_session, tmp_path):
    # given a fresh folder (no sandbox state), the env file of an instance already running there, and free ports
    ports = [str(cli.free_port()) for _ in range(3)]
    running = "export INGRESS_PORT=8000\nexport API_PORT=8001\n"
    (tmp_path / ".erp-sync.env").write_text(running)

    # when `erp-sync dev --story` runs, bounded in time
    process = cli.start("dev", "--story", "--port", ports[0], "--api-port", ports[1], "--sandbox-port", ports[2],
                        cwd=tmp_path, ERP_SYNC_ENV_FILE=".erp-sync.env", DATABASE_URL=migrated_database_url,
                        AMQP_URL=broker, INGRESS_THREADS="4", API_THREADS="4")
    try:
        process.wait(timeout=STORY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    output = cli.stop(process)

    # then each step printed one passing line, in order, with what it checked and its duration
    passed = re.findall(r"^story +\| ok +(\d)\. ([^:]+): .+ \(\d+\.\d s\)$", output, flags=re.MULTILINE)
    assert passed == [(str(n), name) for n, name in enumerate(STEPS, start=1)], output
    assert "story    | all 5 steps passed" in output
    assert process.returncode == 0, output
    # and every line of the run carries its process's tag
    assert all(re.match(r"^[a-z]+ *\| ", line) for line in output.splitlines() if line), output
    # and the running instance's env file is still its own: a second shell reading it reaches that one
    assert (tmp_path / ".erp-sync.env").read_text() == running
