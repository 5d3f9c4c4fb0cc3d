"""`erp-sync reconcile --now | --history | --show RUN` end to end."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

import pytest
from sqlalchemy import text

from erp_sync.shared.reconcile_metrics import exposition

from tests.support import cli
from tests.support.reconcile import TOKEN, levels, seed_levels
from tests.support.waiting import wait_for

EXIT_SKIPPED = 3
# Their imports alone would take the sweeping process past its 64 MB (bench/reconcile.py measures it).
HEAVY = {"sqlalchemy", "flask", "werkzeug", "pika"}
EXIT_HELD = 4
# Two SKUs, one drifted, is half of them: past the default change limit, which these tests turn off.
LIMITS_OFF = {f"RECONCILE_MAX_{limit}_SHARE": "1" for limit in ("CHANGED", "ZEROED", "MISSING")}


def test_reconcile_now_prints_the_summary_and_history_shows_it(erp, committed_session,  # noqa: F811
                                                                migrated_database_url):
    # given one drifted SKU
    url = erp({"CLI-1": 4, "CLI-2": 2})
    seed_levels(committed_session, {"CLI-1": 4, "CLI-2": 9})
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN} | LIMITS_OFF

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
    assert [run["run_id"] for run in json.loads(listed.stdout)["runs"]] == [summary["run_id"]]
    assert json.loads(listed.stdout)["holds"] == {"open": 0, "oldest_open_age_s": 0.0, "released": {}}
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
           "PYTHONPROFILEIMPORTTIME": "1"} | LIMITS_OFF

    # when a sweep runs from the command line, and a scheduler starts and stops
    now = cli.run("reconcile", "--now", **env)
    dry = cli.run("reconcile", "--dry-run", **env)
    scheduler = cli.start("worker", "reconcile", **env)
    deadline = time.monotonic() + 30
    while "reconcile worker started" not in cli.output_of(scheduler) and time.monotonic() < deadline:
        time.sleep(0.1)
    scheduled = cli.stop(scheduler)

    # then the sweep did its work on psycopg and requests, and neither process imported any of the heavy ones
    assert now.returncode == 0 and json.loads(now.stdout)["corrected"] == 1, now.stderr[-3000:]
    assert {"psycopg", "requests", "ijson"} <= imported(now.stderr)
    assert imported(now.stderr) & HEAVY == set()
    assert dry.returncode == 0 and imported(dry.stderr) & HEAVY == set(), dry.stderr[-3000:]
    assert "reconcile worker stopped" in scheduled, scheduled[-3000:]
    assert {"psycopg", "requests", "croniter"} <= imported(scheduled)
    assert imported(scheduled) & HEAVY == set()


def test_a_held_sweep_exits_4_and_waits_for_approve(erp, committed_session, migrated_database_url):  # noqa: F811
    # given one SKU of two drifted: half the SKUs, past the default change limit
    url = erp({"HOLD-1": 4, "HOLD-2": 2})
    seed_levels(committed_session, {"HOLD-1": 4, "HOLD-2": 9})
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN}

    # when a sweep runs, then the held run is approved twice
    now = cli.run("reconcile", "--now", **env)
    summary = json.loads(now.stdout)
    held_levels = levels(committed_session)
    approved = cli.run("reconcile", "--approve", str(summary["run_id"]), **env)
    again = cli.run("reconcile", "--approve", str(summary["run_id"]), **env)

    # then the sweep was held with its reason and an ALERT, and the approval applied it once
    assert now.returncode == EXIT_HELD, now.stderr
    assert summary["status"] == "held" and "RECONCILE_MAX_CHANGED_SHARE" in summary["held_reason"]
    assert "ALERT" in now.stderr
    assert held_levels == {"HOLD-1": 4, "HOLD-2": 9}
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "succeeded", approved.stderr
    assert levels(committed_session) == {"HOLD-1": 4, "HOLD-2": 2}
    assert again.returncode == 1 and "not held" in again.stderr


@pytest.mark.parametrize("output", [None, "changes.jsonl", "changes.csv"])
def test_dry_run_prints_the_summary_and_every_change(output, erp, committed_session, migrated_database_url,
                                                    tmp_path):  # noqa: F811
    # given two drifted SKUs of three
    url = erp({"DRY-1": 4, "DRY-2": 0, "DRY-3": 5})
    seed_levels(committed_session, {"DRY-1": 4, "DRY-2": 9, "DRY-3": 3})
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN}
    args = () if output is None else ("--output", str(tmp_path / output))

    # when a dry run compares
    result = cli.run("reconcile", "--dry-run", *args, **env)

    # then the summary comes last, each change is listed, and nothing was written
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    if output is None:
        listed = [json.loads(line) for line in lines[:-1]]
    elif output.endswith(".csv"):
        listed = [{k: v if k == "sku" else int(v) for k, v in row.items()}
                  for row in csv.DictReader((tmp_path / output).open())]
    else:
        listed = [json.loads(line) for line in (tmp_path / output).read_text().splitlines()]
    assert result.returncode == EXIT_HELD, result.stderr  # two of three would change: past the limit
    assert (summary["dry_run"], summary["status"], summary["mismatched"]) == (True, "held", 2)
    assert listed == [{"sku": "DRY-2", "commerce_qty": 9, "erp_qty": 0, "new_qty": 0, "held": 0},
                      {"sku": "DRY-3", "commerce_qty": 3, "erp_qty": 5, "new_qty": 5, "held": 0}]
    assert levels(committed_session) == {"DRY-1": 4, "DRY-2": 9, "DRY-3": 3}


@pytest.mark.parametrize("output", ["/nonexistent/changes.csv", "/tmp"])
def test_dry_run_to_a_file_it_cannot_write_says_so_in_one_line_before_the_sweep(output):
    # given a database and an ERP where nothing listens: a sweep would fail otherwise
    result = cli.run("reconcile", "--dry-run", "--output", output,
                     DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync", ERP_BASE_URL="http://127.0.0.1:9",
                     ERP_API_TOKEN=TOKEN)

    # then it stops at once with one line naming the path, exit 2, no traceback
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"erp-sync: --output {output}: ")


def test_a_dry_run_that_fails_leaves_the_previous_runs_file_as_it_was(migrated_database_url, tmp_path):
    # given the changes a dry run wrote yesterday
    changes = tmp_path / "changes.csv"
    changes.write_text("sku,commerce_qty,erp_qty,new_qty,held\nDRY-2,9,0,0,0\n")

    # when today's dry run fails (the ERP does not answer)
    result = cli.run("reconcile", "--dry-run", "--output", str(changes), DATABASE_URL=migrated_database_url,
                     ERP_BASE_URL="http://127.0.0.1:9", ERP_API_TOKEN=TOKEN, ERP_QUICK_RETRIES="1")

    # then it says so, and yesterday's file is whole, with nothing half-written beside it
    assert result.returncode == 1, result.stderr
    assert changes.read_text() == "sku,commerce_qty,erp_qty,new_qty,held\nDRY-2,9,0,0,0\n"
    assert [path.name for path in tmp_path.iterdir()] == ["changes.csv"]


@pytest.mark.parametrize("action", [("--now",), ("--dry-run",), ("--show", "1"), ("--approve", "1")])
def test_limit_with_anything_but_the_history_is_refused_before_the_work(action):
    # given a database and an ERP where nothing listens: the command would fail otherwise
    result = cli.run("reconcile", *action, "--limit", "5", DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync",
                     ERP_BASE_URL="http://127.0.0.1:9", ERP_API_TOKEN=TOKEN)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "erp-sync: --limit is for --history only"


@pytest.mark.parametrize("action", [("--now",), ("--history",), ("--show", "1")])
def test_output_with_anything_but_a_dry_run_is_refused_before_the_sweep(action, tmp_path):
    # given a database and an ERP where nothing listens: a sweep would fail otherwise
    result = cli.run("reconcile", *action, "--output", str(tmp_path / "changes.csv"),
                     DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync", ERP_BASE_URL="http://127.0.0.1:9",
                     ERP_API_TOKEN=TOKEN)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "erp-sync: --output is for --dry-run only"
    assert not (tmp_path / "changes.csv").exists()


def test_history_with_a_limit_below_one_is_refused_before_the_database_is_asked():
    result = cli.run("reconcile", "--history", "--limit", "-1", DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync")

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "erp-sync reconcile: error: argument --limit: must be a whole number from 1 to 2**63 - 1, not '-1'")


@pytest.mark.parametrize("action", ["--show", "--approve", "--reject"])
@pytest.mark.parametrize("run", ["99999999999999999999", "0", "-1"])
def test_a_run_id_no_run_can_have_is_refused_before_the_database_is_asked(action, run):
    result = cli.run("reconcile", action, run, DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync",
                     ERP_BASE_URL="http://127.0.0.1:9", ERP_API_TOKEN=TOKEN)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"erp-sync reconcile: error: argument {action}: must be a whole number from 1 to 2**63 - 1, not '{run}'")


@pytest.mark.parametrize(("args", "missing", "line"), [
    (("reconcile", "--now"), {"ERP_BASE_URL"}, "ERP_BASE_URL is not set: the sweep cannot reach the ERP"),
    (("reconcile", "--dry-run"), {"ERP_API_TOKEN"}, "ERP_API_TOKEN is not set: the sweep cannot authenticate to the ERP"),
    (("worker", "reconcile"), {"ERP_BASE_URL"}, "ERP_BASE_URL is not set: the reconcile worker cannot reach the ERP"),
])
def test_a_sweep_without_the_erp_settings_names_them_and_itself(args, missing, line):
    given = {name: value for name, value in {"ERP_BASE_URL": "http://127.0.0.1:9", "ERP_API_TOKEN": TOKEN}.items()
             if name not in missing}

    result = cli.run(*args, DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync", **given)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"erp-sync: configuration error: {line}"]


def test_dry_run_into_a_reader_that_stopped_ends_quietly(erp, committed_session, migrated_database_url):
    # given 3,000 drifted SKUs: more changes than a pipe holds
    skus = [f"PIPE-{n:04d}" for n in range(3000)]
    url = erp(dict.fromkeys(skus, 1))
    seed_levels(committed_session, dict.fromkeys(skus, 2))
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN} | LIMITS_OFF

    # when a dry run's output goes to a reader that has already stopped (`| head -1` after its line)
    process = subprocess.Popen([*cli.command(), "reconcile", "--dry-run"], env=cli.clean_env(**env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)

    # then it ends with exit 1 and no traceback, and nothing was written
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert levels(committed_session) == dict.fromkeys(skus, 2)


def test_ctrl_c_during_a_sweep_ends_it_in_one_line_exit_130(erp, committed_session, migrated_database_url):
    # given an ERP that takes 20 s to answer the snapshot
    url = erp({"INT-1": 1})
    erp.latest_app().extensions["sandbox_erp.faults"].set("slow", 503, 20_000, [])
    seed_levels(committed_session, {"INT-1": 2})
    env = {"DATABASE_URL": migrated_database_url, "ERP_BASE_URL": url, "ERP_API_TOKEN": TOKEN} | LIMITS_OFF
    sweep = cli.start("reconcile", "--now", **env)
    wait_for(lambda: "started" in cli.output_of(sweep), timeout=30)

    # when the operator presses Ctrl-C while it waits
    sweep.send_signal(signal.SIGINT)
    sweep.wait(timeout=30)
    output = cli.stop(sweep)

    # then it says so in one line, exit 130, no traceback, and nothing changed
    assert sweep.returncode == 130, output
    assert output.strip().splitlines()[-1] == "erp-sync: interrupted", output
    assert "Traceback" not in output, output
    assert levels(committed_session) == {"INT-1": 2}
    # and the run is recorded as the operator ended it, not left `running`, and no one is paged for it
    [(status, error)] = committed_session.execute(text("SELECT status, error FROM reconciliation_runs")).all()
    assert (status, error) == ("failed", "interrupted (Ctrl-C), nothing changed")
    assert "ALERT" not in output, output
    # nor by Prometheus: the latest sweep's gauges (ErpSyncSweepFailed reads one) pass over it
    assert "erp_sync_reconcile_last_run_failed" not in exposition(committed_session.get_bind()).decode()
