"""`erp-sync sandbox-erp --tls` without the sandbox extra: a configuration error that says what to install."""
from __future__ import annotations

import sys

import pytest

from erp_sync.sandbox_erp.tls import server_context
from erp_sync.shared.errors import ConfigurationError


def test_tls_without_trustme_names_the_extra_to_install(monkeypatch, tmp_path):
    # given an installation without the sandbox extra (trustme cannot be imported)
    monkeypatch.setitem(sys.modules, "trustme", None)

    # when the sandbox is asked for TLS, then the error names what to install, and no CA file is written
    with pytest.raises(ConfigurationError, match=r"pip install 'erp-sync\[sandbox\]'"):
        server_context(tmp_path / "ca.pem")
    assert not (tmp_path / "ca.pem").exists()
