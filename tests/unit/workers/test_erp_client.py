"""The ERP client's one translation of requests' errors, and its money, without an ERP."""
from __future__ import annotations

import inspect
from decimal import Decimal

import pytest
import requests

from erp_sync.shared.errors import ErpSyncError, PermanentError, TransientError
from erp_sync.shared.orders import dumps
from erp_sync.workers.erp_client import ErpClient, _translated
from tests.support.cli import free_port
from tests.support.sandbox import TOKEN


def client_for(url: str, session: requests.Session | None = None, *, token: str = TOKEN, read_timeout_s: float = 5.0,
               tries: int = 3) -> ErpClient:
    return ErpClient(session or requests.Session(), url, token, connect_timeout_s=1.0, read_timeout_s=read_timeout_s,
                     tries=tries, backoff_base_s=0.01)


def test_probe_of_nothing_listening_is_false():
    assert client_for(f"http://127.0.0.1:{free_port()}").probe() is False


def _requests_exceptions() -> list[type[BaseException]]:
    return sorted(
        (cls for _, cls in inspect.getmembers(requests.exceptions, inspect.isclass)
         if issubclass(cls, requests.RequestException)),
        key=lambda cls: cls.__name__,
    )


@pytest.mark.parametrize("exception", _requests_exceptions(), ids=lambda cls: cls.__name__)
def test_every_requests_exception_maps_to_one_of_ours(exception):
    # when requests raises any of its exceptions inside the client's one translation point
    with pytest.raises(ErpSyncError) as caught, _translated("order X"):
        raise (exception("boom", "{", 0) if issubclass(exception, requests.JSONDecodeError) else exception("boom"))

    # then it is ours, transient or permanent, with the cause kept
    assert isinstance(caught.value, TransientError | PermanentError)
    assert caught.value.__cause__.__class__ is exception


def test_money_is_written_as_exact_json_numbers():
    assert dumps({"p": Decimal("79900.00"), "q": [Decimal("0.10"), Decimal("-1.50")], "s": "79900.00"}) == (
        b'{"p":79900.00,"q":[0.10,-1.50],"s":"79900.00"}'
    )
