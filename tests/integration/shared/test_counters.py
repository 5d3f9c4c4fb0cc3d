"""Every labelled counter an alert reads exists at 0 from a process's start: increase() counts its first rise."""
from __future__ import annotations

import os
import subprocess
import sys

from erp_sync.shared.erp_events import EVENT_MODELS
from erp_sync.workers.metrics import EVENT_TYPES


def test_a_fresh_process_exposes_the_alerted_counters_at_zero():
    # given a new process that has imported the workers' and the ingress's metrics and counted nothing
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    scraped = subprocess.run(
        [sys.executable, "-c", "import erp_sync.workers.metrics, erp_sync.ingress.metrics\n"
                               "from prometheus_client import generate_latest\nprint(generate_latest().decode())"],
        env=env, capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()

    # then the series the alert rules take increase() of are there, at 0
    for series in ('erp_sync_media_images_total{outcome="failed"}',
                   'erp_sync_event_id_conflicts_total{event_type="inventory.change"}',
                   'erp_sync_event_id_conflicts_total{event_type="catalog.update"}',
                   'erp_sync_erp_calls_total{call="push",result="unavailable"}',
                   'erp_sync_erp_calls_total{call="probe",result="ok"}',
                   'erp_sync_webhooks_rejected_total{reason="queue_full"}',
                   'erp_sync_webhooks_rejected_total{reason="too_large"}'):
        assert f"{series} 0.0" in scraped, series


def test_the_event_types_counted_are_the_events_erp_sync_takes():
    assert sorted(EVENT_TYPES) == sorted(EVENT_MODELS)
