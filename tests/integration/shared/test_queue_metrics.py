"""The queue gauges on /metrics: ready and parked messages, read from the broker at each scrape."""
from __future__ import annotations

import logging

from erp_sync.shared.dead_letters import DeadLetters
from erp_sync.shared.queue_metrics import queue_metrics
from erp_sync.shared.topology import WORK_QUEUES
from tests.support.parking import park

INVENTORY = WORK_QUEUES["inventory"]


def parked_samples(settings) -> dict[str, float]:
    [family] = [m for m in queue_metrics(settings, [INVENTORY]) if m.name == "erp_sync_queue_parked_messages"]
    return {sample.labels["queue"]: sample.value for sample in family.samples}


def test_no_parked_count_is_given_while_a_reader_holds_the_parked_messages(settings_factory, broker, caplog):
    # given two parked messages
    settings = settings_factory()
    park(broker, "inventory", "evt_1")
    park(broker, "inventory", "evt_2")
    with caplog.at_level(logging.WARNING):
        before = parked_samples(settings)

        # when a scrape comes while `erp-sync dlq list` holds them
        with DeadLetters(broker).reading() as command_reading:
            next(command_reading)
            during = parked_samples(settings)
        after = parked_samples(settings)

    # then that scrape gives no count (it read 0: a dashboard's dip, an alert resolved), the others 2
    assert before == after == {INVENTORY.name: 2}
    assert during == {}
    # and asking whether a reader holds them logs nothing (pika warns of each channel the broker closes)
    assert [record.getMessage() for record in caplog.records] == []
