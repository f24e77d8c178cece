"""Composition root: build the engine, clock, router and outbox from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bot.settings import Settings, parse_clock
from content.areas import Areas, load_areas
from content.policy import Policy, load_policy
from handlers.router import Router, default_router
from scheduler.clock import Clock, FastClock, RealClock
from scheduler.sweep import SweepConfig
from storage.db import has_schema, make_engine


class NotInitialised(RuntimeError):
    """The database has no checkin schema yet; `where` is its URL without the password."""

    def __init__(self, where: str) -> None:
        super().__init__(f"the database at {where} has no checkin tables: run `checkin init` first")
        self.where = where


def make_clock(settings: Settings) -> Clock:
    """The real clock, or CHECKIN_CLOCK's fast one."""
    if settings.clock:
        start, speed = parse_clock(settings.clock)
        return FastClock(start, speed)
    return RealClock()


@dataclass
class Runtime:
    """What every command needs, built once."""

    settings: Settings
    engine: Engine
    clock: Clock
    policy: Policy = field(init=False)
    areas: Areas = field(init=False)
    router: Router = field(init=False)

    def __post_init__(self) -> None:
        self.policy = load_policy(self.settings.policy_file)
        self.areas = load_areas(self.settings.areas_file, geometry=False)  # shapes (shapely) on first use
        public = self.settings.public_url
        self.router = default_router(policy=self.policy, areas=self.areas, zone=self.settings.zone,
                                     default_language=self.settings.language,
                                     console_url=f"{public.rstrip('/')}/console" if public else None)

    @property
    def sweep_config(self) -> SweepConfig:
        return SweepConfig(self.policy, self.settings.zone, holiday_country=self.settings.holiday_country,
                           calls=self.settings.voice_enabled)

    def require_schema(self) -> None:
        if not has_schema(self.engine):
            raise NotInitialised(self.engine.url.render_as_string(hide_password=True))


def build(settings: Settings) -> Runtime:
    """A runtime for these settings."""
    return Runtime(settings, make_engine(settings.database_url, settings.keyring()), make_clock(settings))
