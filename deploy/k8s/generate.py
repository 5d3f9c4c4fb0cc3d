"""Write deploy/k8s/base/workers.yaml: one Deployment per worker of the registry, and its KEDA ScaledObject.

Run by `make manifests`; a unit test fails when the committed file differs from what this writes.
Names, commands, queues and the settings each worker needs come from erp-sync itself
(workers/registry.py, shared/topology.py, shared/settings.py); only the sizing below is chosen here.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, WorkQueue
from erp_sync.workers.erp_http import longest_quick_pauses_s
from erp_sync.workers.registry import WORKERS, ConsumingWorker, Worker

OUTPUT = Path(__file__).resolve().parent / "base" / "workers.yaml"
SECRET = "erp-sync"
CONFIG = "erp-sync-config"
# SQLAlchemy's overflow above a process's pool (shared/db.py make_engine): its peak connections.
POOL_OVERFLOW = 10
DEFAULT_POOL = 5


@dataclass(frozen=True)
class Sizing:
    """What a worker's pods ask for, how far KEDA may scale it, the messages per pod it aims at, and
    the size of a large message of its queue (how many the queue's byte bound lets in)."""

    cpu: str
    memory: str
    # None: room for its prefetch of the door's largest bodies, and the process (`memory_limit`).
    memory_limit: str | None
    max_replicas: int
    messages_per_replica: int
    large_message_bytes: int = 2_000


# From bench/RESULTS.md (2 cores): one inventory worker applies 2,000-5,500 events/s, one orders
# worker pushes 140-220 orders/s, catalog 54-64 groups/s; a sweep of 1,000,000 SKUs peaks at 53 MB.
# messages_per_replica is about half a minute of one pod's work; max_replicas keeps the sum of
# every pod's database connections within docs/production.md's budget.
# Each is capped by `messages_per_pod` below. A catalog message of a 1,000-variant group is about 370
# kB (docs/production.md); a media message of as many images about 200 kB.
# The catalog's large message assumes a backlog of bulk loads' groups of 1,000 variants: the door
# accepts up to 5,000 (about 1.7 MB), of which the queue's 512 MiB holds about 300, so a backlog of
# those fills the queue (503, which the ERP retries) once KEDA has asked for 2 of the 4 pods. Sized
# for them, the target would be 39 a pod, and 156 small groups (a pod's tenth of a second) would
# ask for all 4.
SIZING: dict[str, Sizing] = {
    "catalog": Sizing("250m", "256Mi", None, 4, 1_000, large_message_bytes=370_000),
    "inventory": Sizing("500m", "256Mi", "512Mi", 6, 50_000),
    "media": Sizing("250m", "256Mi", "512Mi", 4, 200, large_message_bytes=200_000),
    "orders": Sizing("500m", "256Mi", "512Mi", 4, 3_000),
    "reconcile": Sizing("500m", "256Mi", "512Mi", 1, 0),
}


def messages_per_pod(sizing: Sizing, settings: Settings) -> int:
    """KEDA's target: the chosen one, but low enough that every pod is there by the time the queue
    is half full. KEDA's AMQP trigger counts ready messages, and the queue refuses publishes at its
    bound (QUEUE_MAX_LENGTH messages, or QUEUE_MAX_BYTES of large ones): a target of 50,000 under a
    bound of 100,000 never asked for a third inventory pod."""
    room = min(settings.queue_max_length, settings.queue_max_bytes // sizing.large_message_bytes)
    return max(1, min(sizing.messages_per_replica, room // (2 * sizing.max_replicas)))


# docs/production.md: the decoded variants of the batches under way, and the process itself.
PROCESS_HEADROOM_BYTES = 250 * 10**6
MIB = 2**20


def memory_limit(worker: Worker, settings: Settings) -> str:
    """The chosen limit, or room for every body the worker's prefetch lets RabbitMQ hand it unacked at
    the largest the door accepts (WEBHOOK_MAX_BODY_BYTES), and for its batches and the process: a
    bulk load of 1.7 MB bodies took a catalog pod past a fixed 512 Mi."""
    chosen = SIZING[worker.name].memory_limit
    if chosen is not None:
        return chosen
    if not isinstance(worker, ConsumingWorker):
        raise ValueError(f"worker {worker.name} consumes no queue: choose its memory limit")
    held = worker.prefetch_of(settings) * settings.webhook_max_body_bytes
    return f"{math.ceil((held + PROCESS_HEADROOM_BYTES) / MIB)}Mi"


def queues_of(worker: Worker) -> list[WorkQueue]:
    """The queues a worker's process consumes; the orders worker also pushes from its second queue."""
    if not isinstance(worker, ConsumingWorker):
        return []
    return [worker.queue, *([ORDERS_PUSH_QUEUE] if worker.start_loops is not None else [])]


def grace_period_s(worker: Worker, settings: Settings) -> int:
    """How long the process may take on SIGTERM to finish what it holds, with a margin."""
    if worker.name == "reconcile":
        # the sweep under way finishes; RECONCILE_MAX_DURATION_S bounds it
        return math.ceil(settings.reconcile_max_duration_s) + 60
    if worker.needs_erp:
        # a push against a hanging ERP: ERP_QUICK_RETRIES tries of connect + read timeout, and the
        # pauses between them (each up to a Retry-After of 5 s, and its jitter)
        push_s = settings.erp_quick_retries * (settings.erp_connect_timeout_s + settings.erp_read_timeout_s) \
            + longest_quick_pauses_s(settings.erp_quick_retries, settings.erp_quick_retry_base_s)
        return math.ceil(push_s) + 20
    if worker.name == "media":
        # a message's downloads, each bounded by MEDIA_TIMEOUT_S; one cut short is redelivered, applied once
        return math.ceil(settings.media_timeout_s) * 3 + 30
    # a batch of WORKER_BATCH_SIZE messages in one transaction: seconds
    return 30


def database_connections(worker: Worker, settings: Settings) -> int:
    """A pod's peak PostgreSQL connections: its pool and the pool's overflow."""
    pool = DEFAULT_POOL
    if isinstance(worker, ConsumingWorker) and worker.database_connections is not None:
        pool = worker.database_connections(settings)
    return pool + POOL_OVERFLOW


# Each worker's /metrics and /healthz (docs/metrics.md).
METRICS_PORT = 9100
METRICS_ENV = [{"name": "METRICS_HOST", "value": "0.0.0.0"}, {"name": "METRICS_PORT", "value": str(METRICS_PORT)}]
SCRAPED = {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT), "prometheus.io/path": "/metrics"}
# The process's own bound after SIGTERM ends this much before the grace period's SIGKILL, so that
# it logs why it stops: without it, the default 25 s cut the sweep and the pushes the grace allows.
STOP_MARGIN_S = 5


def stop_env(worker: Worker, settings: Settings) -> list[dict[str, Any]]:
    return [{"name": "WORKER_STOP_TIMEOUT_S", "value": str(grace_period_s(worker, settings) - STOP_MARGIN_S)}]


# Keys the Secret may leave out, the feature then off: every process mails its alerts (erp_sync/cli).
OPTIONAL_SECRETS = ["ALERT_SMTP_PASSWORD"]


def secret_ref(name: str, optional: bool = False) -> dict[str, Any]:
    key = {"name": SECRET, "key": name.lower().replace("_", "-"), **({"optional": True} if optional else {})}
    return {"name": name, "valueFrom": {"secretKeyRef": key}}


def secret_env(worker: Worker) -> list[dict[str, Any]]:
    names = ["DATABASE_URL", "AMQP_URL", *(["ERP_API_TOKEN"] if worker.needs_erp else [])]
    return [*(secret_ref(name) for name in names), *(secret_ref(name, optional=True) for name in OPTIONAL_SECRETS)]


def deployment(worker: Worker, settings: Settings) -> dict[str, Any]:
    sizing = SIZING[worker.name]
    labels = {"app.kubernetes.io/name": "erp-sync", "app.kubernetes.io/component": f"worker-{worker.name}"}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels, "annotations": SCRAPED},
            "spec": {
                "terminationGracePeriodSeconds": grace_period_s(worker, settings),
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "worker",
                    "image": "erp-sync",
                    "args": ["worker", worker.name],
                    "envFrom": [{"configMapRef": {"name": CONFIG}}],
                    "env": [*secret_env(worker), *METRICS_ENV, *stop_env(worker, settings)],
                    "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                    # 503 while a consumer is cut off from RabbitMQ: a minute of that, and the pod restarts.
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"},
                                      "periodSeconds": 10, "failureThreshold": 6},
                    "resources": {"requests": {"cpu": sizing.cpu, "memory": sizing.memory},
                                  "limits": {"memory": memory_limit(worker, settings)}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if not queues_of(worker):
        # a scheduled worker is one process (its sweeps must not run twice); KEDA scales the others
        spec = {"replicas": 1, "strategy": {"type": "Recreate"}, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"erp-sync-worker-{worker.name}",
            "labels": labels,
            "annotations": {"erp-sync/database-connections-per-pod": str(database_connections(worker, settings))},
        },
        "spec": spec,
    }


def scaled_object(worker: Worker, settings: Settings) -> dict[str, Any]:
    sizing = SIZING[worker.name]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"erp-sync-worker-{worker.name}"},
        "spec": {
            "scaleTargetRef": {"name": f"erp-sync-worker-{worker.name}"},
            # one pod always there: a lone message is taken at once, not after KEDA's polling
            "minReplicaCount": 1,
            "maxReplicaCount": sizing.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [{
                "type": "rabbitmq",
                "metadata": {"protocol": "amqp", "mode": "QueueLength", "queueName": queue.name,
                             "value": str(messages_per_pod(sizing, settings))},
                "authenticationRef": {"name": "erp-sync-rabbitmq"},
            } for queue in queues_of(worker)],
        },
    }


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  (no stubs for PyYAML here)
    """Writes a repeated mapping out each time: manifests are read by people, not anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(settings: Settings | None = None) -> str:
    """The file's text for these settings (the defaults unless given)."""
    settings = settings or Settings.model_construct()
    documents: list[dict[str, Any]] = []
    for worker in WORKERS.values():
        documents.append(deployment(worker, settings))
        if queues_of(worker):
            documents.append(scaled_object(worker, settings))
    header = "# Generated by `make manifests` (deploy/k8s/generate.py) from workers/registry.py: do not edit.\n"
    return header + str(yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, explicit_start=True))


def main() -> int:
    missing = set(WORKERS) - set(SIZING)
    if missing:
        print(f"no sizing for worker(s) {', '.join(sorted(missing))}: add them to SIZING", file=sys.stderr)
        return 1
    OUTPUT.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
