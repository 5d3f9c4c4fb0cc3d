"""`.erp-sync.env`: settings that `erp-sync dev` wrote for other shells, read when present.

A variable set in the environment always wins over the file; the file only fills what is unset.
`ERP_SYNC_ENV_FILE` names another file, which must then be there, or (empty) turns the file off.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from erp_sync.shared.errors import ConfigurationError

DEFAULT_ENV_FILE = ".erp-sync.env"


def env_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The file `erp-sync` reads, None when ERP_SYNC_ENV_FILE is set empty."""
    env = os.environ if environ is None else environ
    name = env.get("ERP_SYNC_ENV_FILE", DEFAULT_ENV_FILE).strip()
    return Path(name) if name else None


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a file sets (`export NAME=value` or `NAME=value` lines); {} when it is absent.

    Raises:
        ConfigurationError: the file is there but cannot be read as UTF-8 text.
    """
    if not path.is_file():
        return {}
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})" if isinstance(exc, UnicodeDecodeError) \
            else exc.strerror or str(exc)
        raise ConfigurationError(f"ERP_SYNC_ENV_FILE: cannot read {path}: {reason}") from exc
    return {name: value for name, value in values.items() if value is not None}


def apply_env_file(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Fill unset variables of environ (os.environ by default) from the file; returns what it filled.

    Raises:
        ConfigurationError: ERP_SYNC_ENV_FILE names a file other than the default that is not there (a
            typo would otherwise leave every command on the default database and broker), or one that
            cannot be read.
    """
    env = os.environ if environ is None else environ
    path = env_file_path(env)
    # The default name is read when present, set or not: the README lists it, and a deployment may set every default.
    if path and path != Path(DEFAULT_ENV_FILE) and not path.is_file():
        raise ConfigurationError(f"ERP_SYNC_ENV_FILE: no file at {path} (set it empty to read no file)")
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
