"""The service's counters in Prometheus' format (prometheus-client): what this process sent, failed to send and
received, and the console's sign-ins. The gauges read from the database at each scrape (outbox depth, open
escalations, the sweep's age) are in bot/metrics.py; `/metrics` serves both. Labels carry channels, outcomes and
provider codes, never a number or a text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)

SENDS = Counter("checkin_sends_total", "Messages handed to a provider and accepted", ["channel"], registry=REGISTRY)
SEND_FAILURES = Counter("checkin_send_failures_total", "Sends that failed, by channel, outcome (retry or failed) "
                        "and provider code", ["channel", "outcome", "code"], registry=REGISTRY)
INBOUND = Counter("checkin_inbound_total", "Messages received and stored", ["channel"], registry=REGISTRY)
LOGINS = Counter("checkin_console_logins_total", "Sign-ins to the web console", ["outcome"], registry=REGISTRY)


def failed_send(channel: str, outcome: str, code: str | None) -> None:
    SEND_FAILURES.labels(channel, outcome, (code or "none")[:64]).inc()
