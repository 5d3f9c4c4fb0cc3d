"""`erp-sync migrate`: create or upgrade the schema and declare the RabbitMQ topology."""
from __future__ import annotations

import argparse
import json
from urllib.parse import unquote, urlsplit

from erp_sync.cli.exits import EXIT_OK
from erp_sync.shared.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser("migrate", help="create or upgrade the schema and declare the RabbitMQ topology")
    migrate.add_argument(
        "--definitions", action="store_true",
        help="touch nothing: print the topology these settings declare as RabbitMQ definitions (JSON)")
    migrate.set_defaults(run=run_migrate, one_shot=True)


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if getattr(args, "definitions", False):
        print(json.dumps(definitions(settings), indent=2))
        return EXIT_OK

    from erp_sync.shared.amqp_url import amqp_parameters

    amqp_parameters(settings.amqp_url)  # an AMQP_URL pika cannot read stops us before the schema changes

    from erp_sync.shared.broker import declare_all
    from erp_sync.shared.migrate import create_database_if_missing, upgrade_schema

    created = create_database_if_missing(settings.database_url)
    ahead = upgrade_schema(settings.database_url)
    declare_all(settings.amqp_url, settings.retry_delays_ms, settings.order_retry_interval_s * 1000,
                settings.queue_bound)
    schema = "head" if ahead is None else f"{ahead}, newer than this release's: left as it is"
    print(json.dumps({"database_created": created, "schema": schema, "topology": "declared"}))
    return EXIT_OK


def definitions(settings: Settings) -> dict[str, object]:
    """What `erp-sync migrate` declares on AMQP_URL's vhost with these settings, as RabbitMQ definitions."""
    from erp_sync.shared.rabbit_definitions import topology_definitions

    vhost = unquote(urlsplit(settings.amqp_url).path.removeprefix("/")) or "/"
    return topology_definitions(settings.retry_delays_ms, settings.order_retry_interval_s * 1000,
                                settings.queue_bound, vhost)
