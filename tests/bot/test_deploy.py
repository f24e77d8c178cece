"""deploy/: the systemd units and timers pass `systemd-analyze verify` (where systemd is installed), and the
environment file names only real settings, with absolute paths."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer"))


def _verify(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", *sorted(p.name for p in directory.iterdir()
                                                                if p.suffix in (".service", ".timer"))],
                          cwd=directory, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_units_verify(tmp_path):
    """Checked as installed, with the program and the environment file where the units expect them (here, in a
    scratch directory: verify wants the ExecStart to exist); any warning fails the test."""
    program = tmp_path / "checkin"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    (tmp_path / "checkin.env").write_text("")
    for unit in UNITS:
        words = unit.read_text().replace("/opt/checkin/venv/bin/checkin", str(program))
        (tmp_path / unit.name).write_text(words.replace("/etc/checkin/checkin.env", str(tmp_path / "checkin.env")))
    done = _verify(tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "" and done.stderr.strip() == "", done.stderr
    broken = tmp_path / "checkin.service"  # the check can fail: a value systemd does not know
    broken.write_text(broken.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    assert "Failed to parse service restart specifier" in _verify(tmp_path).stderr
    assert {u.stem for u in UNITS if u.suffix == ".timer"} == {"checkin-purge", "checkin-audit", "checkin-backup"}


def test_the_environment_file_names_real_settings_with_absolute_paths():
    names = {f.validation_alias.choices[0] for f in Settings.model_fields.values()}
    lines = (DEPLOY / "checkin.env").read_text().splitlines()
    given = [re.match(r"#?\s*([A-Z_]+)=(.*)", line) for line in lines]
    given = [(m[1], m[2], not m[0].startswith("#")) for m in given if m and "_" in m[1]]
    assert {name for name, _, _ in given} <= names, {name for name, _, _ in given} - names
    active = {name: value for name, value, on in given if on}
    assert active["CHECKIN_DATABASE_URL"].startswith("sqlite:////") and active["CHECKIN_KEY_FILE"].startswith("/")
    assert "ExecStart=/opt/checkin/venv/bin/checkin run\n" in (DEPLOY / "checkin.service").read_text()
    assert "--no-scheduler" in (DEPLOY / "checkin-channels@.service").read_text()
