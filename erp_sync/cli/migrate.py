"""`erp-sync migrate`: create or upgrade the schema and declare the RabbitMQ topology."""
from __future__ import annotations

import argparse
import json

from erp_sync.cli.exits import EXIT_OK
from erp_sync.shared.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser("migrate", help="create or upgrade the schema and declare the RabbitMQ topology")
    migrate.set_defaults(run=run_migrate)


def run_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from erp_sync.shared.broker import declare_all
    from erp_sync.shared.migrate import create_database_if_missing, upgrade_schema

    created = create_database_if_missing(settings.database_url)
    upgrade_schema(settings.database_url)
    declare_all(settings.amqp_url, settings.retry_delays_ms, settings.order_retry_interval_s * 1000,
                settings.queue_bound)
    print(json.dumps({"database_created": created, "schema": "head", "topology": "declared"}))
    return EXIT_OK
