"""What an operator watches: /livez, /healthz as a readiness check, /metrics in Prometheus' format, JSON log lines,
`checkin --version`."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from bot.cli import app
from bot.doctor import readiness
from bot.logs import JsonLines
from bot.metrics import exposition
from bot.web import make_app
from scheduler.channels import PermanentSendError
from scheduler.clock import FixedClock
from scheduler.drain import Outbox
from scheduler.metrics import REGISTRY
from storage import outbox
from storage.db import session_scope
from storage.service_models import beat
from tests.scheduler.test_outbox import RecordingChannel
from tests.sim import County, local

NOW = local(2027, 3, 1, 14)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_livez_healthz_and_metrics(db):
    c = County(db)
    for hour in (9, 11, 13):  # Monday's check-ins missed: alerts open
        c.sweep(local(2027, 3, 1, hour))
    clock = FixedClock(NOW)
    app_ = make_app(clock, {"channels": ["sms"]}, ready=lambda: readiness(db.engine, clock.now()),
                    metrics=exposition(db.engine, clock.now))
    sent_before = REGISTRY.get_sample_value("checkin_sends_total", {"channel": "sms"}) or 0
    failed_before = REGISTRY.get_sample_value("checkin_send_failures_total",
                                              {"channel": "sms", "outcome": "failed", "code": "21610"}) or 0
    def enqueue(i: int) -> int:
        with session_scope(db.engine) as s:
            return outbox.enqueue(s, channel="sms", address=f"+8613900000{i:03d}", body="x",
                                  now=NOW - timedelta(hours=2), dedupe_key=f"m:{i}")

    ids = [enqueue(0), enqueue(1)]
    channel = RecordingChannel(fail={ids[0]: PermanentSendError("opted out", code="21610")})
    await Outbox(db.engine, {"sms": channel}).drain(NOW)  # one failed, the rest sent (the county's SMS too)
    sent = len(channel.sent)
    ids.append(enqueue(2))  # and one due two hours ago, waiting (no drain since)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url="http://t") as web:
        assert (await web.get("/livez")).text == "ok"
        stale = await web.get("/healthz")  # the sweep ran at 13:00, an hour ago; 09:00's prompts were never sent
        assert stale.status_code == 503 and stale.json()["status"] == "not ready"
        assert stale.json()["sweep_age_seconds"] == 3600 and stale.json()["oldest_due_seconds"] == 5 * 3600
        got = _samples((await web.get("/metrics")).text)
        with session_scope(db.engine) as s:  # the service back: a sweep just now, the outbox drained
            beat(s, "sweep", NOW - timedelta(seconds=30), 0.2)
        await Outbox(db.engine, {"sms": channel, "telegram": RecordingChannel("telegram")}).drain(NOW)
        fresh = await web.get("/healthz")
        assert fresh.status_code == 200 and fresh.json()["channels"] == ["sms"]
    assert got[("checkin_sends_total", (("channel", "sms"),))] == sent_before + sent > sent_before
    assert got[("checkin_send_failures_total", (("channel", "sms"), ("code", "21610"), ("outcome", "failed")))] \
        == failed_before + 1
    assert got[("checkin_outbox_messages", (("channel", "sms"), ("state", "queued")))] >= 1
    assert got[("checkin_outbox_oldest_due_seconds", ())] == 5 * 3600
    assert got[("checkin_escalations_open", (("age", "under_4h"), ("kind", "missed_checkin")))] >= 1
    assert got[("checkin_sweep_age_seconds", ())] == 3600
    assert "+86139" not in str(got)  # never a number in a label


def test_json_log_lines_and_the_version():
    record = logging.LogRecord("handlers.checkin", logging.INFO, __file__, 1, "obligation %s done", (7,), None)
    line = json.loads(JsonLines().format(record))
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "handlers.checkin", "obligation 7 done")
    assert line["at"].endswith("+00:00")
    done = CliRunner(env={"CHECKIN_LANGUAGE": "en"}).invoke(app, ["--version"])
    assert done.exit_code == 0 and done.output.startswith("checkin ")
