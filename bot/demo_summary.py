"""What `checkin demo` prints after the run: the simulated people's rates, the messages, the alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table
from sqlmodel import func, select

from content.catalog import DEFAULT_LANGUAGE, text
from storage.db import session_scope
from storage.models import (
    Escalation,
    Leave,
    LocationCheck,
    Message,
    Obligation,
    ObligationKind,
    ObligationState,
    Supervisee,
)


@dataclass
class Outcome:
    """What the demo leaves: the runtime (its database), the simulated span, the simulated people."""

    rt: object
    start: datetime
    end: datetime
    sim: object  # bot.demo.Simulation

    def months(self) -> list[str]:
        """The months (YYYY-MM, local) the simulation touched, oldest first."""
        zone = self.rt.settings.zone
        first, last = self.start.astimezone(zone).date(), self.end.astimezone(zone).date()
        out, day = [], first.replace(day=1)
        while day <= last:
            out.append(f"{day:%Y-%m}")
            day = (day + timedelta(days=32)).replace(day=1)
        return out


@dataclass
class PersonaRate:
    """One persona (a reliability shared by several people): what they meant to do, and what happened."""

    reliability: float
    people: int
    prompts: int
    intended: float  # share of check-in prompts the people meant to answer within the window
    achieved: float  # share of those check-ins done within the window


def persona_rates(outcome: Outcome) -> list[PersonaRate]:
    """Intended and achieved on-time check-in rates per persona."""
    sim = outcome.sim
    with session_scope(outcome.rt.engine) as s:
        rows = s.exec(select(Obligation.supervisee_id, Obligation.state)
                      .where(Obligation.kind == ObligationKind.checkin, Obligation.prompted_at.is_not(None))).all()
        people = {p.id: p for p in s.exec(select(Supervisee)).all()}
    done: dict[int, int] = defaultdict(int)
    for pid, state in rows:
        done[pid] += state == ObligationState.done
    groups: dict[float, list[int]] = defaultdict(list)
    for pid in sim.intended:
        groups[round(sim.persona(people[pid]), 2)].append(pid)
    rates = []
    for reliability, pids in sorted(groups.items()):
        prompts = sum(len(sim.intended[p]) for p in pids)
        if not prompts:
            continue
        rates.append(PersonaRate(reliability, len(pids), prompts,
                                 sum(sum(sim.intended[p]) for p in pids) / prompts,
                                 sum(done[p] for p in pids) / prompts))
    return rates


def _say(lang: str, key: str, /, **params: object) -> str:
    return text(lang, f"office.demo.{key}", **params)


def print_personas(rates: list[PersonaRate], out: Console, lang: str = DEFAULT_LANGUAGE) -> None:
    """The personas' intended and achieved rates, side by side (headings in `lang`)."""
    table = Table(*(_say(lang, f"col_{c}") for c in ("persona", "people", "prompts", "meant", "achieved")),
                  title=_say(lang, "personas"))
    for r in rates:
        table.add_row(f"{r.reliability:.0%}", str(r.people), str(r.prompts), f"{r.intended:.0%}", f"{r.achieved:.0%}")
    out.print(table)


def summarise(rt, out: Console) -> None:
    """Messages by kind and channel, escalations and how they ended (in the office's language)."""
    lang = rt.settings.language
    with session_scope(rt.engine) as s:
        rows = s.exec(select(Message.kind, Message.channel, func.count()).where(Message.direction == "out")
                      .group_by(Message.kind, Message.channel)).all()
        escs = s.exec(select(Escalation.kind, Escalation.state, Escalation.resolution,
                             Escalation.supervisor_notified_at.is_not(None), func.count())
                      .group_by(Escalation.kind, Escalation.state, Escalation.resolution,
                                Escalation.supervisor_notified_at.is_not(None))).all()
        inbound = s.exec(select(func.count()).select_from(Message).where(Message.direction == "in")).one()
        points = s.exec(select(LocationCheck.inside, func.count()).group_by(LocationCheck.inside)).all()
        leave = s.exec(select(Leave.state, Leave.mode, func.count()).group_by(Leave.state, Leave.mode)).all()
    table = Table(*(_say(lang, f"col_{c}") for c in ("kind", "channel", "messages")), title=_say(lang, "outbound"))
    for kind, channel, n in sorted(rows):
        table.add_row(kind, channel, str(n))
    out.print(table)
    out.print(_say(lang, "inbound", count=inbound), markup=False)
    shared = {inside: n for inside, n in points}
    out.print(_say(lang, "locations", inside=shared.get(True, 0), outside=shared.get(False, 0),
                   unchecked=shared.get(None, 0)), markup=False)
    out.print(_say(lang, "leave", what=", ".join(f"{n} {state}{' (' + mode + ')' if mode else ''}"
                                                for state, mode, n in sorted(leave, key=lambda r: (r[0], r[1] or "")))
                   or _say(lang, "none")), markup=False)
    table = Table(*(_say(lang, f"col_{c}") for c in ("escalation", "state", "ended", "up", "count")),
                  title=_say(lang, "escalations"))
    for kind, state, resolution, up, n in sorted(escs, key=lambda r: (r[0], r[1], r[2] or "", r[3])):
        table.add_row(kind, state, resolution or "", text(lang, "office.base.yes") if up else "", str(n))
    out.print(table)
