"""What every phase of a worker benchmark needs: the options, the processes' environment, the services."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine


@dataclass(frozen=True)
class Stage:
    """The options, the environment the product's processes get, the broker and database, a scratch folder."""

    args: argparse.Namespace
    env: dict[str, str]
    amqp_url: str
    engine: Engine
    work_dir: Path
