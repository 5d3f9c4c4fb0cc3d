"""The example events of `examples/` are what the README's walkthrough sends: they must be valid
events, about SKUs the sandbox ERP seeds, and stampable by the walkthrough's `stamp`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from erp_sync.sandbox_erp.seed import seed_store
from erp_sync.sandbox_erp.settings import config_from_env
from erp_sync.sandbox_erp.store import Store
from erp_sync.shared.erp_events import CatalogUpdate, InventoryChange, decode_event

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
README = (ROOT / "README.md").read_text()
ERP_TEAMS = (ROOT / "docs" / "erp-teams.md").read_text()
# What the walkthrough's `stamp` replaces with the current time (its sed expression, in Python).
TIMESTAMP = re.compile(r'"timestamp": "[^"]*"')


def skus_of(event: CatalogUpdate | InventoryChange) -> list[str]:
    if isinstance(event, CatalogUpdate):
        return [variant.sku for variant in event.data.variants]
    return [event.data.sku]


@pytest.fixture(scope="module")
def sandbox_stock() -> dict[str, int]:
    """Every SKU the sandbox ERP seeds with its default settings, and its stock."""
    config = config_from_env({})
    store = Store(":memory:")
    with store.transaction() as conn:
        seed_store(conn, config.catalog_file, config.generate_groups, config.variants_per_group, config.random_seed)
    with store.reading() as conn:
        stock = dict(conn.execute("SELECT sku, qty FROM variants").fetchall())
    store.close()
    return stock


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_is_a_valid_event(path):
    assert isinstance(decode_event(path.read_bytes()), (CatalogUpdate, InventoryChange))


def test_the_examples_hold_one_event_of_each_type():
    types = sorted(json.loads(path.read_bytes())["event_type"] for path in EXAMPLES)

    assert types == ["catalog.update", "inventory.change"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_docs_send_every_example(path):
    assert f"stamp examples/{path.name} >" in README + ERP_TEAMS


def test_the_stamp_of_the_docs_is_the_walkthroughs():
    [stamp] = re.findall(r"^stamp\(\) .*$", README, flags=re.MULTILINE)

    assert stamp in ERP_TEAMS.splitlines()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_stamp_finds_one_event_id_to_make_fresh(path):
    assert len(re.findall(r'"event_id": "[^"]*"', path.read_text())) == 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_stamping_an_example_keeps_it_valid_with_the_new_time(path):
    raw = path.read_text()
    assert len(TIMESTAMP.findall(raw)) == 1, "stamp must find exactly one timestamp"

    stamped = TIMESTAMP.sub('"timestamp": "2031-05-06T07:08:09Z"', raw).encode()

    assert decode_event(stamped).timestamp.isoformat() == "2031-05-06T07:08:09+00:00"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_names_skus_the_sandbox_seeds(path, sandbox_stock):
    skus = skus_of(decode_event(path.read_bytes()))

    assert skus and set(skus) <= set(sandbox_stock)


def test_the_sweep_in_the_walkthrough_has_a_difference_to_correct(sandbox_stock):
    # The walkthrough says the sandbox seeds 140 and the sweep corrects the example's figure to it.
    event = decode_event((ROOT / "examples" / "inventory-change.json").read_bytes())
    assert isinstance(event, InventoryChange)

    assert sandbox_stock[event.data.sku] == 140
    assert event.data.new_quantity is not None and event.data.new_quantity != 140
