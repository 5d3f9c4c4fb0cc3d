"""The ERP client without an ERP: nothing listening, and money as exact JSON numbers."""
from __future__ import annotations

from decimal import Decimal

from erp_sync.shared.orders import dumps
from erp_sync.workers.erp_client import ErpClient, erp_pool
from tests.support.cli import free_port
from tests.support.sandbox import TOKEN


def client_for(url: str) -> ErpClient:
    return ErpClient(erp_pool(url), url, TOKEN, connect_timeout_s=1.0, read_timeout_s=5.0, tries=3, backoff_base_s=0.01)


def test_probe_of_nothing_listening_is_false():
    assert client_for(f"http://127.0.0.1:{free_port()}").probe() is False


def test_money_is_written_as_exact_json_numbers():
    assert dumps({"p": Decimal("79900.00"), "q": [Decimal("0.10"), Decimal("-1.50")], "s": "79900.00"}) == (
        b'{"p":79900.00,"q":[0.10,-1.50],"s":"79900.00"}'
    )
