"""`erp-sync dlq list|show|replay|purge`: the parked messages, with their reasons."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from erp_sync.cli.exits import EXIT_CONFIGURATION, EXIT_FAILURE, EXIT_OK
from erp_sync.shared.settings import Settings

# A second reader waits for the first (the console's, or another on call's) rather than failing:
# a replay of 100,000 parked messages takes about two minutes (each publish waits for its confirm).
READER_WAIT_S = 300.0

if TYPE_CHECKING:
    from erp_sync.shared.dead_letters import DeadLetters, ParkedMessage, SettledMessage


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser("dlq", help="list, show, replay or purge parked messages")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every parked message: queue, id, attempts, parked at, reason")
    listing.add_argument("queue", nargs="?", help="one worker's queue (catalog, inventory, media, orders, ...; or as "
                         "RabbitMQ names it, erp-sync.inventory)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = actions.add_parser("show", help="one parked message with its headers and body")
    show.add_argument("id", help="its event or order id")
    show.add_argument("--queue", help="look on this worker's parking queue only (quicker with many parked)")
    replay = actions.add_parser("replay", help="put parked messages back on their work queues")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", default=[], metavar="ID", help="event or order ids")
    which.add_argument("--all", action="store_true", help="every parked message (of --queue)")
    replay.add_argument("--queue", help="only this worker's parked messages")
    purge = actions.add_parser("purge", help="drop parked messages for good: these ids, or every one (of --queue)")
    # --all, as replay's: an id list left empty (an unset shell variable) must not mean every message.
    dropped = purge.add_mutually_exclusive_group(required=True)
    dropped.add_argument("ids", nargs="*", default=[], metavar="ID", help="event or order ids")
    dropped.add_argument("--all", action="store_true", help="every parked message (of --queue)")
    purge.add_argument("--queue", help="only this worker's parked messages")
    purge.add_argument("--yes", action="store_true", help="yes, drop them: they cannot be brought back")
    dlq.set_defaults(run=run_dlq, one_shot=True)


def run_dlq(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: pika is no import of the sweep's process, which builds this parser too.
    from erp_sync.shared.dead_letters import DeadLetters

    letters = DeadLetters(settings.amqp_url, wait_s=READER_WAIT_S)
    # Printed once every message is handed back: a pager or a slow pipe must not hold them, and the
    # other readers waiting, for as long as it is open. A summary is small; bodies are not kept.
    if args.action == "list":
        with letters.reading(args.queue) as messages:
            summaries = [parked.summary() for parked in messages]
        for summary in summaries:
            print(json.dumps(summary) if args.json else
                  "{queue}\t{id}\tattempts={attempts}\tparked_at={parked_at}\t{reason}".format(**summary))
        if not summaries:
            _nothing_parked(args.queue, "listed")
        return EXIT_OK
    if args.action == "show":
        with letters.reading(args.queue) as messages:
            found = [message for message in messages if message.message_id == args.id]
        return _show(found, args.id)
    if args.action == "replay":
        return _replay(letters, args)
    if not args.yes:
        print("erp-sync: dlq purge drops messages for good; add --yes", file=sys.stderr)
        return EXIT_CONFIGURATION
    if args.ids:
        return _reporting("purged", set(args.ids), args.queue,
                          lambda settled: letters.drop(set(args.ids), args.queue, settled))
    print(json.dumps({"purged": letters.purge(args.queue)}))
    return EXIT_OK


def _show(found: list[ParkedMessage], message_id: str) -> int:
    if not found:
        print(f"erp-sync: no parked message {message_id}", file=sys.stderr)
        return EXIT_FAILURE
    for message in found:
        print(json.dumps(message.summary() | {"headers": {k: str(v) for k, v in message.headers.items()},
                                              "body": message.body.decode("utf-8", "replace")}, indent=2))
    return EXIT_OK


def _replay(letters: DeadLetters, args: argparse.Namespace) -> int:
    wanted = None if args.all else set(args.ids)
    return _reporting("replayed", wanted, args.queue, lambda settled: letters.replay(wanted, args.queue, settled))


def _reporting(done: str, wanted: set[str] | None, queue: str | None,
               settle: Callable[[list[SettledMessage]], list[SettledMessage]]) -> int:
    """`settle`, then `_settled`; cut short (the broker refusing, gone, or Ctrl-C), the messages
    settled before it are still told, one line each, before main prints why in one line."""
    settled: list[SettledMessage] = []
    try:
        settle(settled)
    except BaseException:
        _settled(done, None, settled)
        raise
    if wanted is None and not settled:
        _nothing_parked(queue, done)
    return _settled(done, wanted, settled)


def _nothing_parked(queue: str | None, done: str) -> None:
    # Unsaid, an empty answer looked like a command that did not run. On stderr: stdout, a line a
    # message (JSON lines with --json), stays empty.
    where = f" from {queue}" if queue else ""
    print(f"erp-sync: nothing parked{where}: nothing {done}", file=sys.stderr)


def _settled(done: str, wanted: set[str] | None, settled: list[SettledMessage]) -> int:
    """One line for each message settled, one on stderr for each id wanted and not parked; exit 1 if any."""
    for parked in settled:
        print(f"{done} {parked.worker}\t{parked.message_id}")
    missing = (wanted or set()) - {parked.message_id for parked in settled}
    for message_id in sorted(missing):
        print(f"erp-sync: no parked message {message_id}", file=sys.stderr)
    return EXIT_FAILURE if missing else EXIT_OK
