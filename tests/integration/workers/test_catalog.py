"""The catalog worker against real PostgreSQL: spec 3.1's full objects, ordering, moves, media."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from erp_sync.ingress.availability import stock_history
from erp_sync.shared.consumer import Delivery
from erp_sync.shared.erp_events import decode_event
from erp_sync.shared.internal_messages import MediaDownload
from erp_sync.shared.models import (
    Category,
    Media,
    ProcessedEvent,
    ProductGroup,
    StockChange,
    StockLevel,
    Variant,
)
from erp_sync.shared.settings import load_settings
from erp_sync.shared.topology import INTERNAL_EXCHANGE
from tests.support.factories import (
    catalog_event,
    encode,
    inventory_event,
    now_iso,
    variant_with,
)
from tests.support.race import blocked_or_done, race_both_ways
from erp_sync.workers import catalog as catalog_module
from erp_sync.workers.catalog import CatalogOutcome, apply_catalog_batch, apply_catalog_update, build_handler
from erp_sync.workers.inventory import apply_inventory_change

BLACK, BLUE = "IPH15-128-BLK", "IPH15-128-BLU"


@pytest.fixture(autouse=True)
def empty_catalog(db_session):
    """Each test starts from an empty catalog whatever other tests committed (rolled back after)."""
    for model in (Media, Variant, ProductGroup, StockChange, StockLevel):
        db_session.execute(delete(model))


def catalog(*, at=timedelta(), **data):
    document = catalog_event(**data)
    document["timestamp"] = now_iso(at)
    return decode_event(encode(document))


def variant(session, sku):
    return session.execute(select(Variant).where(Variant.sku == sku)).scalar_one()


def media(session, sku):
    return session.execute(select(Media).where(Media.sku == sku).order_by(Media.position)).scalars().all()


def stock(session, sku):
    return session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku))


def test_spec_example_is_stored_with_exact_prices_attributes_category_and_media(db_session):
    # given nothing in the catalog
    # when spec 3.1's example arrives
    result = apply_catalog_update(catalog(), db_session)

    # then the group, its category path and both variants are there as the ERP sent them
    assert result.outcome is CatalogOutcome.APPLIED
    group = db_session.get(ProductGroup, "PG-1001")
    assert (group.group_name, group.description, group.tax_hsn, group.is_active) == (
        "iPhone 15", "<p>Full HTML...</p>", "85171300", True)
    assert group.category_path == ["Electronics", "Smartphones", "Apple"]
    leaf = db_session.get(Category, group.category_id)
    assert (leaf.name, leaf.parent.name, leaf.parent.parent.name, leaf.parent.parent.parent) == (
        "Apple", "Smartphones", "Electronics", None)
    black, blue = variant(db_session, BLACK), variant(db_session, BLUE)
    assert (black.display_name, black.price, black.mrp) == ("iPhone 15 128GB Black", Decimal("79900.00"),
                                                           Decimal("89900.00"))
    assert (blue.price, blue.mrp, blue.is_active) == (Decimal("79900.00"), None, True)
    assert black.attributes == {"Color": "Black", "Storage": "128GB"}
    assert (stock(db_session, BLACK), stock(db_session, BLUE)) == (50, 42)

    # and the images are in order, the main one marked, each pending and asked for
    assert [(m.position, m.url, m.is_main, m.status) for m in media(db_session, BLACK)] == [
        (0, "https://erp-cdn.com/u/iph15-blk.jpg", True, "pending"),
        (1, "https://erp-cdn.com/u/iph15-blk-back.jpg", False, "pending"),
    ]
    rows = media(db_session, BLACK) + media(db_session, BLUE)
    assert set(result.media_downloads) == {MediaDownload(media_id=m.id, sku=m.sku, url=m.url) for m in rows}


def test_attributes_stay_queryable_for_filter_by(db_session):
    # given a variant with text and numeric attributes
    apply_catalog_update(catalog(variants=[variant_with(attributes={"Color": "Black", "Screen": 6.1, "SIMs": 2})]),
                         db_session)

    # when the storefront filters by them
    found = db_session.scalars(select(Variant.sku).where(Variant.attributes.contains({"Screen": 6.1, "SIMs": 2})))

    # then the variant matches, its numbers still numbers
    assert list(found) == [BLACK]
    assert variant(db_session, BLACK).attributes == {"Color": "Black", "Screen": 6.1, "SIMs": 2}


def test_an_attribute_number_of_15_significant_digits_is_stored_and_read_back_digit_for_digit(db_session):
    document = catalog_event(variants=[variant_with(attributes={"Weight": 123456789})])
    body = encode(document).replace(b"123456789", b"123456789012.345", 1)

    apply_catalog_update(decode_event(body), db_session)

    stored = db_session.scalar(select(Variant.attributes["Weight"].as_string()).where(Variant.sku == BLACK))
    assert stored == "123456789012.345"
    assert json.dumps(variant(db_session, BLACK).attributes["Weight"]) == "123456789012.345"


def test_variant_no_longer_listed_is_deactivated_not_deleted(db_session):
    # given the group with two variants
    apply_catalog_update(catalog(at=timedelta(minutes=-1)), db_session)

    # when a later full update lists only the black one
    apply_catalog_update(catalog(variants=[variant_with()]), db_session)

    # then the blue one is still there for the orders that name it, but inactive
    assert (variant(db_session, BLACK).is_active, variant(db_session, BLUE).is_active) == (True, False)
    assert media(db_session, BLUE) != []


def test_inactive_group_deactivates_the_group_and_all_its_variants(db_session):
    # given the active group
    apply_catalog_update(catalog(at=timedelta(minutes=-1)), db_session)

    # when the ERP marks it inactive
    apply_catalog_update(catalog(is_active=False), db_session)

    # then the group and every variant are inactive
    assert db_session.get(ProductGroup, "PG-1001").is_active is False
    assert (variant(db_session, BLACK).is_active, variant(db_session, BLUE).is_active) == (False, False)


def test_sku_listed_under_another_group_moves_there_and_the_move_is_logged(db_session, caplog):
    # given the black variant in PG-1001
    apply_catalog_update(catalog(at=timedelta(minutes=-1)), db_session)

    # when PG-2002 lists it
    moving = catalog(product_group_id="PG-2002", group_name="iPhone 15 Black", variants=[variant_with()])
    with caplog.at_level(logging.INFO, logger="erp_sync.workers.catalog"):
        apply_catalog_update(moving, db_session)

    # then it belongs to PG-2002 and the log names the event, the SKU and both groups
    assert variant(db_session, BLACK).product_group_id == "PG-2002"
    moves = [r for r in caplog.records if "moved" in r.getMessage()]
    assert [r.args for r in moves] == [(moving.event_id, BLACK, "PG-1001", "PG-2002")]


def test_late_update_of_the_old_group_does_not_pull_a_moved_sku_back(db_session, caplog):
    # given the black variant moved to PG-2002 by an update of 10:05
    apply_catalog_update(catalog(product_group_id="PG-2002", variants=[variant_with()]), db_session)

    # when an update of PG-1001 from 10:00, still listing it, arrives late
    late = catalog(at=timedelta(minutes=-5))
    with caplog.at_level(logging.INFO, logger="erp_sync.workers.catalog"):
        apply_catalog_update(late, db_session)

    # then the black variant stays in PG-2002, PG-1001 got its blue one, and the log counts only that
    # one as applied and names the SKU it left
    assert variant(db_session, BLACK).product_group_id == "PG-2002"
    assert variant(db_session, BLUE).product_group_id == "PG-1001"
    lines = [r.getMessage() for r in caplog.records]
    assert f"event {late.event_id} for group PG-1001 applied: 1 variants" in lines
    assert f"event {late.event_id} left sku {BLACK} in the group a newer update put it in" in lines


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "in one batch"])
@pytest.mark.parametrize("arrival", [(0, 1, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0)],
                         ids=["in order", "move late", "all backwards", "first load late"])
def test_a_sku_moved_then_dropped_is_off_sale_whichever_update_comes_late(db_session, arrival, batched):
    # given the ERP's three updates: at 10:00 PG-OLD lists X and Y; at 10:10 Y moves to PG-NEW beside
    # W; at 10:20 PG-NEW drops Y
    x, y, w = (variant_with(sku=sku) for sku in ("SKU-X", "SKU-Y", "SKU-W"))
    updates = [catalog(at=timedelta(minutes=-20), product_group_id="PG-OLD", variants=[x, {**y, "price": 70.0}]),
               catalog(at=timedelta(minutes=-10), product_group_id="PG-NEW", variants=[{**y, "price": 80.0}, w]),
               catalog(product_group_id="PG-NEW", variants=[w])]

    # when they arrive in this order
    apply_in_order(db_session, [updates[index] for index in arrival], batched=batched)

    # then Y is off sale in the group it was dropped from, as when they come in order, and X and W on sale
    dropped = variant(db_session, "SKU-Y")
    assert (dropped.product_group_id, dropped.is_active) == ("PG-NEW", False)
    assert (variant(db_session, "SKU-X").is_active, variant(db_session, "SKU-W").is_active) == (True, True)


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "in one batch"])
@pytest.mark.parametrize("arrival", [(0, 1, 2), (1, 2, 0), (2, 1, 0)],
                         ids=["in order", "the first load late", "both earlier late"])
def test_a_stale_update_takes_no_sku_off_sale_that_an_update_of_the_same_second_moved(db_session, arrival, batched):
    # given the ERP stamping whole seconds: at 10:00:00 PG-A lists S and X, and in the same second
    # PG-B lists S (a move); at 10:00:10 PG-A lists X alone
    stamp = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    updates = [at_time(stamp, product_group_id="PG-A", variants=[variant_with(sku="SKU-S"), variant_with(sku="SKU-X")]),
               at_time(stamp, product_group_id="PG-B", variants=[variant_with(sku="SKU-S")]),
               at_time(stamp + timedelta(seconds=10), product_group_id="PG-A", variants=[variant_with(sku="SKU-X")])]

    # when they arrive in this order
    apply_in_order(db_session, [updates[index] for index in arrival], batched=batched)

    # then S is on sale in PG-B, as in the ERP: the stale PG-A update of its second does not take it back
    moved = variant(db_session, "SKU-S")
    assert (moved.product_group_id, moved.is_active) == ("PG-B", True)


def apply_in_order(session, updates, *, batched: bool) -> None:
    """The updates as they arrive: one message at a time, or in one batch of the catalog worker."""
    if batched:
        apply_catalog_batch(updates, session)
        return
    for update_ in updates:
        apply_catalog_update(update_, session)


def at_time(stamp: datetime, **data):
    document = catalog_event(**data)
    document["timestamp"] = stamp.isoformat().replace("+00:00", "Z")
    return decode_event(encode(document))


def test_update_older_than_the_one_applied_is_ignored_as_stale(db_session):
    # given the group as of now
    apply_catalog_update(catalog(), db_session)

    # when an update from an hour ago arrives late
    late = catalog(at=timedelta(hours=-1), group_name="iPhone 15 (old name)",
                   variants=[variant_with(price=1.00, media=[{"url": "https://erp-cdn.com/u/old.jpg"}])])
    result = apply_catalog_update(late, db_session)

    # then nothing of it shows
    assert result.outcome is CatalogOutcome.STALE and result.media_downloads == ()
    assert db_session.get(ProductGroup, "PG-1001").group_name == "iPhone 15"
    assert variant(db_session, BLACK).price == Decimal("79900.00")
    assert variant(db_session, BLUE).is_active is True
    assert [m.url for m in media(db_session, BLACK)][0] == "https://erp-cdn.com/u/iph15-blk.jpg"


def test_replayed_update_changes_nothing(db_session):
    # given an update applied, then the blue variant's price changed by a newer one
    first = catalog(at=timedelta(minutes=-1))
    apply_catalog_update(first, db_session)
    blue = catalog_event()["data"]["variants"][1] | {"price": 69900.00}
    apply_catalog_update(catalog(variants=[variant_with(), blue]), db_session)

    # when the first update is delivered again
    result = apply_catalog_update(first, db_session)

    # then it is a duplicate and nothing moved back
    assert result.outcome is CatalogOutcome.DUPLICATE
    assert variant(db_session, BLUE).price == Decimal("69900.00")
    assert [c.event_id for c in stock_history(db_session, BLUE).changes].count(first.event_id) == 1


def test_stock_in_a_catalog_update_older_than_an_inventory_figure_is_ignored(db_session):
    # given an inventory figure of 49 as of now
    apply_inventory_change(decode_event(encode(inventory_event(new_quantity=49))), db_session)

    # when a catalog update of a minute ago says 50
    update_ = catalog(at=timedelta(minutes=-1))
    apply_catalog_update(update_, db_session)

    # then the product is there but 49 stands, the 50 recorded as stale
    assert variant(db_session, BLACK).display_name == "iPhone 15 128GB Black"
    assert stock(db_session, BLACK) == 49
    latest = stock_history(db_session, BLACK).changes[0]
    assert (latest.event_id, latest.outcome, latest.quantity) == (update_.event_id, "stale", 50)


def confirm_all(session, sku):
    session.execute(update(Media).where(Media.sku == sku).values(status="confirmed", sha256="ab" * 32,
                                                                byte_size=1234, content_type="image/jpeg"))


def test_unchanged_media_keeps_its_confirmed_status_and_digest(db_session):
    # given the black variant's images downloaded and confirmed
    apply_catalog_update(catalog(at=timedelta(minutes=-1)), db_session)
    confirm_all(db_session, BLACK)
    before = [(m.id, m.url) for m in media(db_session, BLACK)]

    # when a newer update lists the same images (say, a new price)
    result = apply_catalog_update(catalog(variants=[variant_with(price=74900.00)]), db_session)

    # then they stay confirmed with their digest, and nothing is downloaded again
    db_session.expire_all()
    after = media(db_session, BLACK)
    assert [(m.id, m.url) for m in after] == before
    assert {(m.status, m.sha256) for m in after} == {("confirmed", "ab" * 32)}
    assert result.media_downloads == ()


def test_changed_media_keeps_the_images_that_stay_and_asks_for_the_new_ones(db_session):
    # given the black variant's two images confirmed
    apply_catalog_update(catalog(at=timedelta(minutes=-1)), db_session)
    confirm_all(db_session, BLACK)
    kept = media(db_session, BLACK)[1]

    # when a newer update drops the front image, puts the back one first as main, and adds a side one
    images = [{"url": kept.url, "is_main": True}, {"url": "https://erp-cdn.com/u/iph15-blk-side.jpg"}]
    result = apply_catalog_update(catalog(variants=[variant_with(media=images)]), db_session)

    # then the back image keeps its row and confirmation, and only the side one is asked for
    db_session.expire_all()
    rows = media(db_session, BLACK)
    assert [(m.position, m.url, m.is_main, m.status) for m in rows] == [
        (0, kept.url, True, "confirmed"),
        (1, "https://erp-cdn.com/u/iph15-blk-side.jpg", False, "pending"),
    ]
    assert (rows[0].id, rows[0].sha256, rows[0].byte_size) == (kept.id, "ab" * 32, 1234)
    assert result.media_downloads == (MediaDownload(media_id=rows[1].id, sku=BLACK, url=rows[1].url),)


def fail_all(session, sku):
    session.execute(update(Media).where(Media.sku == sku).values(status="failed", attempts=5,
                                                                failure_reason="gave up after 5 attempts: HTTP 503"))


@pytest.mark.parametrize("images", ["unchanged", "changed"])
def test_failed_images_are_asked_for_again_when_the_erp_sends_their_product_again(db_session, images):
    # given the black variant's images given up on while their host was down
    apply_catalog_update(catalog(at=timedelta(minutes=-1)), db_session)
    fail_all(db_session, BLACK)
    failed = media(db_session, BLACK)

    # when the ERP sends the product again (a new price), with the same images or one more
    listed = [{"url": m.url, "is_main": m.is_main} for m in failed]
    if images == "changed":
        listed.append({"url": "https://erp-cdn.com/u/iph15-blk-side.jpg"})
    result = apply_catalog_update(catalog(variants=[variant_with(price=74900.00, media=listed)]), db_session)

    # then each failed image starts afresh, pending with no attempt spent, and is asked for again
    db_session.expire_all()
    rows = media(db_session, BLACK)
    assert [(m.id, m.status, m.attempts, m.failure_reason) for m in rows[:len(failed)]] == [
        (m.id, "pending", 0, None) for m in failed]
    assert sorted(d.media_id for d in result.media_downloads) == sorted(m.id for m in rows)


def test_groups_share_their_category_nodes(db_session):
    # given a group under Electronics > Smartphones > Apple
    apply_catalog_update(catalog(), db_session)

    # when another group comes under Electronics > Smartphones > Samsung
    other = variant_with(sku="S24-BLK")
    apply_catalog_update(catalog(product_group_id="PG-S24", variants=[other],
                                 category_hierarchy=["Electronics", "Smartphones", "Samsung"]), db_session)

    # then both leaves hang under the same Smartphones node
    apple = db_session.get(Category, db_session.get(ProductGroup, "PG-1001").category_id)
    samsung = db_session.get(Category, db_session.get(ProductGroup, "PG-S24").category_id)
    assert samsung.name == "Samsung" and samsung.parent_id == apple.parent_id


def test_handler_returns_the_media_downloads_to_send_after_commit(db_session, migrated_database_url):
    # given the catalog worker's handler
    handle = build_handler(load_settings(database_url=migrated_database_url))
    body = encode(catalog_event())

    # when it handles the spec's example
    handled = handle(Delivery(delivery_tag=1, body=body, message_id="m1", content_type="application/json"),
                     db_session)

    # then it is applied, and one message asks the media worker for the group's three images
    assert handled.outcome == "applied"
    [message] = handled.follow_ups
    assert message.exchange == INTERNAL_EXCHANGE
    assert sorted(image["url"] for image in json.loads(message.body)["images"]) == sorted(
        m.url for m in db_session.scalars(select(Media)))


@pytest.fixture
def race_group(db_engine):
    group_id = f"PG-{uuid.uuid4().hex[:8]}"
    yield group_id
    skus = select(Variant.sku).where(Variant.product_group_id == group_id)
    with Session(db_engine) as session, session.begin():
        events = select(StockChange.event_id).where(StockChange.sku.in_(skus)).scalar_subquery()
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(events)))
        session.execute(delete(StockChange).where(StockChange.sku.in_(skus)))
        session.execute(delete(StockLevel).where(StockLevel.sku.in_(skus)))
        session.execute(delete(Media).where(Media.sku.in_(skus)))
        session.execute(delete(Variant).where(Variant.product_group_id == group_id))
        session.execute(delete(ProductGroup).where(ProductGroup.product_group_id == group_id))
        session.execute(delete(Category).where(Category.name == group_id))


def test_two_processes_racing_on_one_group_never_go_backwards(db_engine, race_group):
    # given 40 updates of one group, each delivered to two workers in opposite orders
    sku = f"{race_group}-BLK"
    updates = [
        catalog(at=timedelta(seconds=n), product_group_id=race_group, group_name=f"name {n}",
                category_hierarchy=[race_group],
                variants=[variant_with(sku=sku, price=n, stock_quantity=n,
                                       media=[{"url": f"https://erp-cdn.com/u/{n}.jpg", "is_main": True}])])
        for n in range(40)
    ]

    # when they race
    errors = race_both_ways(db_engine, apply_catalog_update, updates)

    # then the newest update stands whole: name, price, stock and image
    assert errors == []
    with Session(db_engine) as session:
        assert session.get(ProductGroup, race_group).group_name == "name 39"
        assert (variant(session, sku).price, stock(session, sku)) == (Decimal("39.00"), 39)
        assert [m.url for m in media(session, sku)] == ["https://erp-cdn.com/u/39.jpg"]


def test_replayed_update_asks_again_for_the_images_still_pending(db_session):
    # given an update applied whose download requests were lost (say, with the connection)
    event = catalog()
    first = apply_catalog_update(event, db_session)
    confirmed = media(db_session, BLACK)[0]
    db_session.execute(update(Media).where(Media.id == confirmed.id).values(status="confirmed"))

    # when the broker delivers the event again
    again = apply_catalog_update(event, db_session)

    # then it changes nothing but requests the images not yet confirmed, and only those
    assert again.outcome is CatalogOutcome.DUPLICATE
    pending = {d.media_id for d in first.media_downloads} - {confirmed.id}
    assert {d.media_id for d in again.media_downloads} == pending and pending


@pytest.fixture
def crossing_groups(db_engine):
    """Two committed groups of one SKU each under one category of their own; removed afterwards with
    everything their SKUs left."""
    tag = uuid.uuid4().hex[:8]
    groups, skus = (f"PG-{tag}-1", f"PG-{tag}-2"), (f"{tag}-S1", f"{tag}-S2")
    with Session(db_engine) as session, session.begin():
        for group, sku in zip(groups, skus):
            apply_catalog_update(catalog(at=timedelta(minutes=-1), product_group_id=group, category_hierarchy=[tag],
                                         variants=[variant_with(sku=sku, stock_quantity=1)]), session)
    yield tag, groups, skus
    with Session(db_engine) as session, session.begin():
        events = select(StockChange.event_id).where(StockChange.sku.in_(skus)).scalar_subquery()
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(events)))
        for model in (StockChange, StockLevel, Media, Variant):
            session.execute(delete(model).where(model.sku.in_(skus)))
        session.execute(delete(ProductGroup).where(ProductGroup.product_group_id.in_(groups)))
        session.execute(delete(Category).where(Category.name == tag))


def test_two_workers_moving_skus_into_each_others_groups_both_apply_without_a_deadlock(db_engine, crossing_groups,
                                                                                      monkeypatch):
    # given group 1 holding S1 and group 2 holding S2, and two workers each applying an update that
    # moves the other group's SKU into its own group
    tag, (group_1, group_2), (s1, s2) = crossing_groups
    path = [tag]  # created already: a category being created would make one worker wait for the other
    updates = [catalog(product_group_id=group_1, category_hierarchy=path, variants=[variant_with(sku=s2, stock_quantity=2)]),
               catalog(at=timedelta(seconds=1), product_group_id=group_2, category_hierarchy=path,
                       variants=[variant_with(sku=s1, stock_quantity=3)])]
    # and each worker holding its writes until the other has written its variants or waits for a lock:
    # the interleaving that deadlocked when variants were locked in two orders
    written = [threading.Event(), threading.Event()]
    workers: list[threading.Thread] = []
    deactivate = catalog_module.deactivate_omitted

    def deactivate_once_both_wrote(session, events):
        mine = 0 if events[0].data.product_group_id == group_1 else 1
        written[mine].set()
        other = workers[1 - mine]
        waiting_until = time.monotonic() + 10
        while not written[1 - mine].is_set() and not blocked_or_done(db_engine, other):
            assert time.monotonic() < waiting_until, "the other worker neither wrote nor waited"
            time.sleep(0.02)
        return deactivate(session, events)

    monkeypatch.setattr(catalog_module, "deactivate_omitted", deactivate_once_both_wrote)
    errors: list[BaseException] = []

    def apply(update):
        try:
            with Session(db_engine) as session, session.begin():
                apply_catalog_update(update, session)
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    workers.extend(threading.Thread(target=apply, args=(update,)) for update in updates)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    # then neither worker failed (a deadlock costs the loser a retry and a second)
    assert errors == []
    # and each SKU is in the group that took it, active, with that update's figure
    with Session(db_engine) as session:
        rows = session.execute(select(Variant.sku, Variant.product_group_id, Variant.is_active)
                               .where(Variant.sku.in_([s1, s2])).order_by(Variant.sku)).all()
        assert [tuple(row) for row in rows] == [(s1, group_2, True), (s2, group_1, True)]
        assert (stock(session, s1), stock(session, s2)) == (3, 2)


@pytest.fixture
def new_categories(db_engine):
    """Two category names no test made before; their categories removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = (f"{tag}-A", f"{tag}-B")
    yield names
    with Session(db_engine) as session, session.begin():
        session.execute(delete(Category).where(Category.name.in_(names)))


def test_two_batches_creating_the_same_new_categories_in_other_orders_do_not_deadlock(db_engine, new_categories,
                                                                                      monkeypatch):
    # given two workers' batches naming the same two new categories, in opposite orders
    a, b = new_categories
    paths = [[[a], [b]], [[b], [a]]]
    # and each worker, once it created its first category, waiting until the other has created its
    # own first or waits for a lock: the interleaving that deadlocked
    created_first = [threading.Event(), threading.Event()]
    workers: list[threading.Thread] = []
    create = catalog_module._create_category

    def create_then_wait(session, parent_id, name):
        node = create(session, parent_id, name)
        mine = int(threading.current_thread().name)
        if not created_first[mine].is_set():
            created_first[mine].set()
            waiting_until = time.monotonic() + 10
            while not created_first[1 - mine].is_set() and not blocked_or_done(db_engine, workers[1 - mine]):
                assert time.monotonic() < waiting_until, "the other worker neither created nor waited"
                time.sleep(0.02)
        return node

    monkeypatch.setattr(catalog_module, "_create_category", create_then_wait)
    errors: list[BaseException] = []
    leaves: dict[int, list[int | None]] = {}

    def apply(number: int) -> None:
        try:
            with Session(db_engine) as session, session.begin():
                leaves[number] = catalog_module._category_ids(session, paths[number])
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    workers.extend(threading.Thread(target=apply, args=(n,), name=str(n)) for n in (0, 1))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    # then neither failed (a deadlock costs the loser its batch, run again one by one), and both
    # name the same two categories
    assert errors == []
    assert leaves[0] == list(reversed(leaves[1])) and None not in leaves[0] and len(set(leaves[0])) == 2


@pytest.fixture
def tagged_catalog(db_engine):
    """A tag for committed groups and SKUs of one test (`PG-<tag>-…`, `<tag>-…`), all removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    yield tag
    with Session(db_engine) as session, session.begin():
        skus = select(Variant.sku).where(Variant.sku.like(f"{tag}-%")).scalar_subquery()
        events = select(StockChange.event_id).where(StockChange.sku.in_(skus)).scalar_subquery()
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(events)))
        for model in (StockChange, StockLevel, Media):
            session.execute(delete(model).where(model.sku.like(f"{tag}-%")))
        session.execute(delete(Variant).where(Variant.sku.like(f"{tag}-%")))
        session.execute(delete(ProductGroup).where(ProductGroup.product_group_id.like(f"PG-{tag}-%")))
        session.execute(delete(Category).where(Category.name == tag))


def test_a_batch_writing_a_stale_updates_skus_and_a_worker_moving_them_do_not_deadlock(db_engine, tagged_catalog,
                                                                                      monkeypatch):
    # given groups Z (SKU A), G (B and C), K (Q) and X (R), committed
    tag = tagged_catalog
    path = [tag]

    def update(minutes: int, group: str, *skus: str):
        return catalog(at=timedelta(minutes=minutes), product_group_id=f"PG-{tag}-{group}", category_hierarchy=path,
                       variants=[variant_with(sku=f"{tag}-{sku}", stock_quantity=None) for sku in skus])

    with Session(db_engine) as session, session.begin():
        for earlier in (update(-60, "Z", "A"), update(-50, "G", "B", "C"), update(-10, "K", "Q"), update(-70, "X", "R")):
            apply_catalog_update(earlier, session)
    # and a worker taking a batch where G drops B and a late K update lists A (stale for K, newer than A's
    # row), while another applies X listing A and B: the interleaving that deadlocked when the stale
    # update's SKUs were locked after the batch had locked the groups' rows
    batch = [update(-5, "G", "C"), update(-30, "K", "A")]
    moving = update(-1, "X", "A", "B", "R")
    workers: dict[str, threading.Thread] = {}
    batch_locked = threading.Event()
    upsert = catalog_module.upsert_variants

    def upsert_once_the_other_waits(session, events, *rest):
        if threading.current_thread() is workers.get("batch"):
            batch_locked.set()
            waiting_until = time.monotonic() + 10
            while not blocked_or_done(db_engine, workers["moving"]):
                assert time.monotonic() < waiting_until, "the other worker neither finished nor waited"
                time.sleep(0.02)
        return upsert(session, events, *rest)

    monkeypatch.setattr(catalog_module, "upsert_variants", upsert_once_the_other_waits)
    errors: list[BaseException] = []

    def run(apply) -> None:
        try:
            with Session(db_engine) as session, session.begin():
                apply(session)
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    workers["batch"] = threading.Thread(target=run, args=(lambda session: apply_catalog_batch(batch, session),))
    workers["moving"] = threading.Thread(target=run, args=(
        lambda session: batch_locked.wait(10) and apply_catalog_update(moving, session),))
    for worker in workers.values():
        worker.start()
    for worker in workers.values():
        worker.join(timeout=30)

    # then neither failed, and A and B end in X, on sale
    assert errors == []
    with Session(db_engine) as session:
        rows = session.execute(select(Variant.sku, Variant.product_group_id, Variant.is_active)
                               .where(Variant.sku.in_([f"{tag}-A", f"{tag}-B"])).order_by(Variant.sku)).all()
    assert [tuple(row) for row in rows] == [(f"{tag}-A", f"PG-{tag}-X", True), (f"{tag}-B", f"PG-{tag}-X", True)]


def received(ms: int) -> datetime:
    """When the door received an event, `ms` milliseconds into the current hour on its clock."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(milliseconds=ms)


def in_one_second(**data):
    """A catalog.update stamped with a whole second a minute ago, as the ERP stamps: two share it."""
    document = catalog_event(**data)
    document["timestamp"] = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=0, microsecond=0)\
        .isoformat().replace("+00:00", "Z")
    return decode_event(encode(document))


def priced(price: float, stock: int, name: str):
    return in_one_second(group_name=name, variants=[variant_with(sku=sku, price=price, stock_quantity=stock)
                                                    for sku in (BLACK, BLUE)])


def test_of_two_updates_in_one_second_the_one_the_door_received_later_stands_though_applied_first(db_session):
    # given a bulk job's two repricings of one group in one second, 100.00 then 101.00, the door
    # receiving them in that order; the later one applied first (by a faster worker)
    earlier, later = priced(100.0, 9, "iPhone 15 (old)"), priced(101.0, 8, "iPhone 15")
    assert apply_catalog_update(later, db_session, received=received(300)).outcome is CatalogOutcome.APPLIED

    # when the earlier one is applied after it (a slower worker committing last)
    result = apply_catalog_update(earlier, db_session, received=received(0))

    # then it is stale: the group, its variants' prices and their stock stay the ERP's last
    assert result.outcome is CatalogOutcome.STALE
    assert db_session.get(ProductGroup, "PG-1001").group_name == "iPhone 15"
    assert [(variant(db_session, sku).price, variant(db_session, sku).is_active) for sku in (BLACK, BLUE)] == [
        (Decimal("101.00"), True)] * 2
    assert [stock(db_session, sku) for sku in (BLACK, BLUE)] == [8, 8]


def test_of_two_updates_in_one_second_with_no_receipt_stamp_the_later_arrival_wins(db_session):
    # given an update received by the door
    earlier, later = priced(100.0, 9, "iPhone 15 (old)"), priced(101.0, 8, "iPhone 15")
    apply_catalog_update(later, db_session, received=received(300))

    # when one of the same second arrives without a stamp (queued by an earlier release's door)
    result = apply_catalog_update(earlier, db_session)

    # then the later arrival wins, as before receipt stamps
    assert result.outcome is CatalogOutcome.APPLIED
    assert variant(db_session, BLACK).price == Decimal("100.00")


def test_a_sku_moved_and_dropped_in_one_second_ends_where_the_door_received_it_last(db_session):
    # given, in one second, the door receiving: group H listing SKU X; group G listing X (a move);
    # then G without X (dropped). A worker applies H, then G without X, and last the move
    x, y = variant_with(sku="TIE-X"), variant_with(sku="TIE-Y")
    h_lists_x = in_one_second(product_group_id="PG-TIE-H", variants=[x])
    g_lists_x = in_one_second(product_group_id="PG-TIE-G", variants=[x, y])
    g_drops_x = in_one_second(product_group_id="PG-TIE-G", variants=[y])
    apply_catalog_update(h_lists_x, db_session, received=received(0))
    apply_catalog_update(g_drops_x, db_session, received=received(200))

    # when the move (received between them) is applied last: stale for G
    result = apply_catalog_update(g_lists_x, db_session, received=received(100))

    # then X ends as it would applied in the door's order: moved into G, then dropped there
    assert result.outcome is CatalogOutcome.STALE
    row = variant(db_session, "TIE-X")
    assert (row.product_group_id, row.is_active) == ("PG-TIE-G", False)
