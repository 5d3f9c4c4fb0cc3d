"""`.erp-sync.env`: what `erp-sync dev` writes for a second shell, read only where the environment is silent."""
from __future__ import annotations

import stat

import pytest

from erp_sync.shared.env_file import apply_env_file, read_env_file, write_env_file
from erp_sync.shared.errors import ConfigurationError


def test_the_file_fills_only_variables_the_environment_does_not_set(tmp_path):
    # given a file written by dev, and a shell that sets one of its variables itself
    path = tmp_path / "dev.env"
    write_env_file(path, {"ERP_BASE_URL": "http://127.0.0.1:8900", "ERP_API_TOKEN": "from-the-file-0123456"})
    environ = {"ERP_SYNC_ENV_FILE": str(path), "ERP_API_TOKEN": "from-the-shell-0123456"}

    # when erp-sync reads it
    filled = apply_env_file(environ)

    # then the unset variable comes from the file, the set one stays the shell's
    assert filled == {"ERP_BASE_URL": "http://127.0.0.1:8900"}
    assert environ["ERP_API_TOKEN"] == "from-the-shell-0123456"


def test_the_file_is_private_and_readable_by_a_shell_and_by_erp_sync(tmp_path):
    path = tmp_path / "dev.env"
    write_env_file(path, {"STOREFRONT_API_TOKEN": "a b$c"})

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("export STOREFRONT_API_TOKEN=")
    assert read_env_file(path) == {"STOREFRONT_API_TOKEN": "a b$c"}


def test_an_empty_setting_or_no_default_file_reads_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .erp-sync.env here

    assert apply_env_file({"ERP_SYNC_ENV_FILE": ""}) == {}
    assert apply_env_file({}) == {}
    assert apply_env_file({"ERP_SYNC_ENV_FILE": ".erp-sync.env"}) == {}  # the default, set as the README lists it


def test_a_named_file_that_is_not_there_is_a_configuration_error(tmp_path):
    # A typo would otherwise leave the command on the default database and broker.
    with pytest.raises(ConfigurationError) as caught:
        apply_env_file({"ERP_SYNC_ENV_FILE": str(tmp_path / "absent.env")})

    assert str(caught.value) == f"ERP_SYNC_ENV_FILE: no file at {tmp_path / 'absent.env'} (set it empty to read no file)"


def test_a_file_that_is_not_utf8_is_a_configuration_error_naming_it(tmp_path):
    path = tmp_path / "dev.env"
    path.write_bytes(b"export ERP_BASE_URL=http://erp\xff\n")

    with pytest.raises(ConfigurationError) as caught:
        apply_env_file({"ERP_SYNC_ENV_FILE": str(path)})

    assert str(caught.value).startswith(f"ERP_SYNC_ENV_FILE: cannot read {path}: not UTF-8 text")
