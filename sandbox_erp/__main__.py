"""`python -m sandbox_erp`: the sandbox's commands without the erp-sync console script."""
from __future__ import annotations

import argparse
import logging
import sys

from erp_sync.sandbox_erp.cli import add_sandbox_arguments, run_sandbox_command

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m sandbox_erp", description="A stand-in ERP.")
    add_sandbox_arguments(parser)
    sys.exit(run_sandbox_command(parser.parse_args()))
