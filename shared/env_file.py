"""`.erp-sync.env`: settings that `erp-sync dev` wrote for other shells, read when present.

A variable set in the environment always wins over the file; the file only fills what is unset.
`ERP_SYNC_ENV_FILE` names another file, or (empty) turns the file off.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from dotenv import dotenv_values

DEFAULT_ENV_FILE = ".erp-sync.env"


def env_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file `erp-sync` reads, None when ERP_SYNC_ENV_FILE is set empty."""
    env = os.environ if environ is None else environ
    name = env.get("ERP_SYNC_ENV_FILE", DEFAULT_ENV_FILE).strip()
    return Path(name) if name else None


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a file sets (`export NAME=value` or `NAME=value` lines); {} when it is absent."""
    if not path.is_file():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value is not None}


def apply_env_file(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Fill unset variables of environ (os.environ by default) from the file; returns what it filled."""
    env = os.environ if environ is None else environ
    path = env_file_path(env)
    filled = {name: value for name, value in read_env_file(path).items() if name not in env} if path else {}
    env.update(filled)
    return filled


def write_env_file(path: Path, variables: Mapping[str, str]) -> None:
    """Write `export NAME=value` lines, readable by `source` and by erp-sync, for this user only."""
    if any("'" in value or "\n" in value for value in variables.values()):
        raise ValueError("a value with a quote or a line break cannot be written for both a shell and dotenv")
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    # Created private: the file holds the webhook secret and the tokens.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.writelines(lines)
