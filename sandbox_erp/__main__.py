"""`python -m erp_sync.sandbox_erp`: the sandbox's commands without the erp-sync console script."""
from __future__ import annotations

import argparse
import logging
import sys

from erp_sync.shared.logs import configure_logging
from erp_sync.sandbox_erp.cli import add_sandbox_arguments, run_sandbox_command

if __name__ == "__main__":
    configure_logging(logging.INFO)
    parser = argparse.ArgumentParser(prog="python -m erp_sync.sandbox_erp", description="A stand-in ERP.")
    add_sandbox_arguments(parser)
    sys.exit(run_sandbox_command(parser.parse_args()))
