"""What the service imports: a library it does not use is not loaded (memory: docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = """
import json, sys
from bot.settings import load_settings
from bot.runtime import build
from bot.stack import Stack
from bot.office.app import office_routes
from bot.serve import serve  # what `checkin run` imports
settings = load_settings(**json.loads(sys.argv[1]))
rt = build(settings)
stack = Stack(rt)
office_routes(rt, stack.kick)
stack.routes()
print(json.dumps(sorted(m for m in sys.modules if "." not in m)))
"""


def loaded(tmp_path: Path, **settings) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKIN_", "TELEGRAM_", "TWILIO_"))}
    env.update(CHECKIN_DATA_KEYS=os.environ["CHECKIN_DATA_KEYS"], CHECKIN_INDEX_KEY=os.environ["CHECKIN_INDEX_KEY"],
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    settings = {"database_url": f"sqlite:///{tmp_path / 'c.db'}", **settings}
    out = subprocess.run([sys.executable, "-c", SERVICE, json.dumps(settings)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout))


SMS = {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "t", "twilio_from_number": "+15005550006"}


@pytest.mark.parametrize("channels, present, absent", [
    (SMS, {"twilio"}, {"telegram", "shapely", "numpy", "alembic", "openpyxl", "pytest"}),
    ({"telegram_bot_token": "123:ABC"}, {"telegram", "httpx"}, {"twilio", "shapely", "numpy", "alembic", "pygments"}),
])
def test_the_service_loads_only_the_libraries_it_uses(tmp_path, channels, present, absent):
    modules = loaded(tmp_path, **channels)
    assert present <= modules
    assert not (absent & modules), absent & modules
