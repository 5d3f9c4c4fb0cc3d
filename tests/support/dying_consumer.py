"""A consumer process that dies on one message, as the kernel's OOM killer kills a worker: no error, no ack.

`python -m tests.support.dying_consumer AMQP_URL DATABASE_URL FATAL_ID CONCURRENCY` consumes the
inventory queue through the workers' own composition (a BatchRunner inside a CrashGuard), records
each other message it handles in `processed_events`, and exits on SIGTERM.
"""
from __future__ import annotations

import os
import sys
import threading

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from erp_sync.shared.batch_runner import BatchRunner
from erp_sync.shared.consumer import ConcurrentConsumer, Consumer, ConsumerConfig, Delivery
from erp_sync.shared.db import make_engine, make_session_factory
from erp_sync.shared.models.events import ProcessedEvent
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.crash_guard import CrashGuard
from erp_sync.workers.signals import stop_on_signals
from tests.support.settings import TEST_RETRY_DELAYS_MS

QUEUE = WORK_QUEUES["inventory"]
EVENT_TYPE = "dying-consumer"
PREFETCH = 10
BATCH_SIZE = 5
KILLED = 137  # a process SIGKILLed (128 + 9), as a shell reports it


def main(amqp_url: str, database_url: str, fatal_id: str, concurrency: int) -> None:
    engine = make_engine(database_url)
    config = ConsumerConfig(amqp_url=amqp_url, retry_delays_ms=TEST_RETRY_DELAYS_MS, max_attempts=4,
                            prefetch=PREFETCH, batch_size=BATCH_SIZE)

    def handle(delivery: Delivery, session: Session) -> None:
        if delivery.message_id == fatal_id:
            os._exit(KILLED)
        session.execute(insert(ProcessedEvent).values(event_id=delivery.message_id, event_type=EVENT_TYPE)
                        .on_conflict_do_nothing())

    stop: threading.Event = stop_on_signals("stopping", 10.0)
    runner = CrashGuard.on(BatchRunner(handle, make_session_factory(engine), config), QUEUE.name, engine, stop)
    consumer = (Consumer(QUEUE, runner, config) if concurrency == 1
                else ConcurrentConsumer(QUEUE, runner, config, concurrency=concurrency, batch_size=BATCH_SIZE))
    consumer.run(stop)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
