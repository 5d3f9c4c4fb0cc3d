"""The exit codes every `erp-sync` command answers with, and the shape of a command."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from erp_sync.shared.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1  # a service failed; the line on stderr says which
EXIT_CONFIGURATION = 2  # a setting is missing or wrong; the line names the variable
EXIT_SKIPPED = 3  # `reconcile --now`: another sweep was running
EXIT_HELD = 4  # `reconcile --now | --dry-run`: the run passed a change limit; nothing was written
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) in a one-shot command, as shells report it: 128 + 2

# What a subcommand runs: settings are None for the commands that set `needs_settings=False`.
Command = Callable[[Settings, argparse.Namespace], int]
