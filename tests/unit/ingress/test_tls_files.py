"""The ingress's certificate and key are checked where it starts, as granian will load them: one line
naming the setting, not a traceback from each granian worker."""
from __future__ import annotations

import pytest

from erp_sync.ingress.serve import api_listener, door_listener, server_options
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.settings import load_settings


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A certificate, its key, another certificate's key, the key encrypted, and a file of no PEM at all."""
    import trustme
    from cryptography.hazmat.primitives import serialization

    directory = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued, other = authority.issue_cert("localhost"), authority.issue_cert("elsewhere")
    issued.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    issued.private_key_pem.write_to_path(str(directory / "key.pem"))
    other.private_key_pem.write_to_path(str(directory / "other-key.pem"))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    (directory / "encrypted-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")))
    (directory / "junk.pem").write_text("not a PEM file\n")
    return directory


def test_a_certificate_and_its_key_are_served(tls_files):
    settings = load_settings(ingress_tls_certfile=str(tls_files / "cert.pem"),
                             ingress_tls_keyfile=str(tls_files / "key.pem"))

    options = server_options(settings)

    assert (options["ssl_cert"], options["ssl_key"]) == (tls_files / "cert.pem", tls_files / "key.pem")


def test_other_processes_do_not_read_the_files():
    # a shared environment may name files only the ingress's container holds
    settings = load_settings(ingress_tls_certfile="/only/in/the/ingress/cert.pem",
                             ingress_tls_keyfile="/only/in/the/ingress/key.pem")

    assert str(settings.ingress_tls_certfile) == "/only/in/the/ingress/cert.pem"


@pytest.mark.parametrize(("certfile", "keyfile", "variable", "reason"), [
    ("missing.pem", "key.pem", "INGRESS_TLS_CERTFILE", "cannot read"),
    ("junk.pem", "key.pem", "INGRESS_TLS_CERTFILE", "no PEM certificate"),
    ("key.pem", "key.pem", "INGRESS_TLS_CERTFILE", "no PEM certificate"),
    ("cert.pem", "missing.pem", "INGRESS_TLS_KEYFILE", "cannot read"),
    ("cert.pem", "junk.pem", "INGRESS_TLS_KEYFILE", "not a PEM private key of the certificate"),
    ("cert.pem", "other-key.pem", "INGRESS_TLS_KEYFILE", "not a PEM private key of the certificate"),
    ("cert.pem", "encrypted-key.pem", "INGRESS_TLS_KEYFILE", "the key is encrypted"),
])
def test_tls_files_that_would_not_load_stop_with_one_line_naming_them(tls_files, certfile, keyfile, variable,
                                                                      reason):
    settings = load_settings(ingress_tls_certfile=str(tls_files / certfile), ingress_tls_keyfile=str(tls_files / keyfile))

    with pytest.raises(ConfigurationError) as caught:
        server_options(settings)

    message = str(caught.value)
    assert message.startswith(f"{variable}:") and reason in message
    assert "\n" not in message


def test_the_certificate_is_the_doors_alone_not_the_apis(tls_files):
    # a shared environment names the ERP-facing certificate: the storefront's API stays plain HTTP
    settings = load_settings(ingress_tls_certfile=str(tls_files / "cert.pem"),
                             ingress_tls_keyfile=str(tls_files / "key.pem"))

    assert "ssl_cert" in server_options(settings, door_listener(settings))
    assert "ssl_cert" not in server_options(settings, api_listener(settings))
