"""`erp-sync reconcile --now | --history | --show RUN` end to end."""
from __future__ import annotations

import json
import time

import pytest

from tests.support import cli
from tests.support.reconcile import TOKEN, levels, seed_levels

EXIT_SKIPPED = 3
# Their imports alone would take the sweeping process past its 64 MB (bench/reconcile.py measures it).
HEAVY = {"sqlalchemy", "flask", "werkzeug", "pika"}


def test_reconcile_now_prints_the_summary_and_history_shows_it(erp, committed_session,  # noqa: F811
                                                                migrated_database_url):
    # given one drifted SKU
    url = erp({"CLI-1": 4, "CLI-2": 2})
    seed_levels(committed_session, {"CLI-1": 4, "CLI-2": 9})
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN}

    # when a sweep runs from the command line, then its history and the run are read
    now = cli.run("reconcile", "--now", **env)
    summary = json.loads(now.stdout)
    listed = cli.run("reconcile", "--history", **env)
    shown = cli.run("reconcile", "--show", str(summary["run_id"]), **env)

    # then the sweep corrected the SKU and both readers agree
    assert now.returncode == 0, now.stderr
    assert {k: summary[k] for k in ("status", "checked", "mismatched", "corrected")} == {
        "status": "succeeded", "checked": 2, "mismatched": 1, "corrected": 1}
    assert {"missing_in_commerce", "missing_in_erp", "duration_s"} <= summary.keys()
    assert levels(committed_session) == {"CLI-1": 4, "CLI-2": 2}
    assert [run["run_id"] for run in json.loads(listed.stdout)] == [summary["run_id"]]
    assert json.loads(shown.stdout)["corrections"] == [{"sku": "CLI-2", "old": 9, "new": 2}]


def test_show_of_an_unknown_run_fails(committed_session, migrated_database_url):  # noqa: F811
    result = cli.run("reconcile", "--show", "424242", DATABASE_URL=migrated_database_url,
                     ERP_BASE_URL="http://127.0.0.1:9", ERP_API_TOKEN=TOKEN)
    assert result.returncode == 1 and "424242" in result.stderr


@pytest.mark.parametrize("args", [("--history",), ("--show", "1")])
def test_history_with_the_database_down_says_so_in_one_line(args):
    # given a DATABASE_URL where nothing listens
    result = cli.run("reconcile", *args, DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync",
                     ERP_BASE_URL="http://127.0.0.1:9", ERP_API_TOKEN=TOKEN)

    # then the command fails with one line naming the database, no traceback
    assert result.returncode == 1
    assert result.stderr.startswith("erp-sync: database unavailable") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def imported(output: str) -> set[str]:
    """The top-level packages that PYTHONPROFILEIMPORTTIME=1 reported imported in `output`."""
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in output.splitlines()
            if line.startswith("import time:")}


def test_the_sweeping_processes_import_no_orm_nor_web_nor_amqp_library(erp, committed_session,  # noqa: F811
                                                                      migrated_database_url):
    # given one drifted SKU
    url = erp({"LEAN-1": 1, "LEAN-2": 2})
    seed_levels(committed_session, {"LEAN-1": 1, "LEAN-2": 3})
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN,
           "PYTHONPROFILEIMPORTTIME": "1"}

    # when a sweep runs from the command line, and a scheduler starts and stops
    now = cli.run("reconcile", "--now", **env)
    scheduler = cli.start("worker", "reconcile", **env)
    deadline = time.monotonic() + 30
    while "reconcile worker started" not in cli.output_of(scheduler) and time.monotonic() < deadline:
        time.sleep(0.1)
    scheduled = cli.stop(scheduler)

    # then the sweep did its work on psycopg and requests, and neither process imported any of the heavy ones
    assert now.returncode == 0 and json.loads(now.stdout)["corrected"] == 1, now.stderr[-3000:]
    assert {"psycopg", "requests", "ijson"} <= imported(now.stderr)
    assert imported(now.stderr) & HEAVY == set()
    assert "reconcile worker stopped" in scheduled, scheduled[-3000:]
    assert {"psycopg", "requests", "croniter"} <= imported(scheduled)
    assert imported(scheduled) & HEAVY == set()
