"""What every phase of a worker benchmark needs: the options, the processes' environment, the services."""
from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from bench.drain import bench_engine
from bench.sandbox import private_database, private_vhost
from bench.servers import server_env
from erp_sync.shared.settings import Settings, load_settings


@dataclass(frozen=True)
class Stage:
    """The options, the environment the product's processes get, the broker and database, a scratch folder."""

    args: argparse.Namespace
    env: dict[str, str]
    amqp_url: str
    engine: Engine
    work_dir: Path


@dataclass(frozen=True)
class Services:
    """A run's own scratch folder, vhost and database, the settings naming them, the processes' environment."""

    work_dir: Path
    amqp_url: str
    settings: Settings
    engine: Engine
    env: dict[str, str]


def enter_services(stack: ExitStack, secret: str) -> Services:
    """Make the run's folder, vhost and database, each removed when `stack` closes; webhooks signed with `secret`."""
    base = load_settings()
    work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="erp-sync-bench-")))
    amqp_url = stack.enter_context(private_vhost(base.amqp_url, base.retry_delays_ms))
    database_url = stack.enter_context(private_database(base.database_url))
    settings = load_settings(amqp_url=amqp_url, database_url=database_url, erp_webhook_secret=secret)
    engine = bench_engine(database_url)
    stack.callback(engine.dispose)
    return Services(work_dir, amqp_url, settings, engine, server_env(settings, secret, work_dir / "metrics"))
