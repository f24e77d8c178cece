"""`/metrics`: the counters this process keeps (scheduler/metrics.py) and gauges read from the database at each
scrape: the outbox's depth by channel and state and its oldest message due, open escalations by kind and age, and
the sweep's last run. Only indexed, small sets are counted (messages waiting, alerts open), never the message log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from scheduler.metrics import REGISTRY
from storage import outbox
from storage.db import session_scope
from storage.models import Escalation, EscalationState, Message, MessageStatus
from storage.service_models import last_beat

PENDING = (MessageStatus.queued, MessageStatus.sending)
AGES = ((timedelta(hours=4), "under_4h"), (timedelta(hours=24), "4h_to_24h"), (None, "over_24h"))


class DatabaseGauges(Collector):
    """Read at each scrape, in the scraping thread."""

    def __init__(self, engine, now: Callable[[], datetime]) -> None:
        self.engine, self.now = engine, now

    def collect(self):
        now = self.now()
        depth = GaugeMetricFamily("checkin_outbox_messages", "Messages waiting to be sent", labels=["channel", "state"])
        oldest = GaugeMetricFamily("checkin_outbox_oldest_due_seconds", "How long the oldest message due has waited")
        alerts = GaugeMetricFamily("checkin_escalations_open", "Open escalations by kind and age",
                                   labels=["kind", "age"])
        sweep_age = GaugeMetricFamily("checkin_sweep_age_seconds", "Seconds since the sweep last ran")
        sweep_took = GaugeMetricFamily("checkin_sweep_duration_seconds", "How long the last sweep took")
        with session_scope(self.engine) as db:
            for channel, state, n in db.execute(select(Message.channel, Message.status, func.count())
                                                .where(Message.status.in_(PENDING))
                                                .group_by(Message.channel, Message.status)):
                depth.add_metric([channel, str(state)], n)
            first = outbox.oldest_due(db, now)
            oldest.add_metric([], (now - first).total_seconds() if first else 0.0)
            counts: dict[tuple[str, str], int] = {}
            for kind, opened in db.execute(select(Escalation.kind, Escalation.opened_at).where(
                    Escalation.state != EscalationState.resolved)):
                age = now - opened
                bucket = next(name for limit, name in AGES if limit is None or age < limit)
                counts[(str(kind), bucket)] = counts.get((str(kind), bucket), 0) + 1
            for (kind, bucket), n in sorted(counts.items()):
                alerts.add_metric([kind, bucket], n)
            beat = last_beat(db, "sweep")
        if beat is not None:
            sweep_age.add_metric([], (now - beat.at).total_seconds())
            sweep_took.add_metric([], beat.seconds)
        yield from (depth, oldest, alerts, sweep_age, sweep_took)


def exposition(engine, now: Callable[[], datetime]) -> Callable[[], bytes]:
    """What a scrape gets: this process's counters, then the database's gauges (a registry of their own)."""
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(DatabaseGauges(engine, now))
    return lambda: generate_latest(REGISTRY) + generate_latest(gauges)
