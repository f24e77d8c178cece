"""The one-way layers: bot -> scheduler -> handlers -> {content, storage}."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "scheduler", "content", "storage")
ALLOWED = {
    "bot": {"bot", "scheduler", "handlers", "content", "storage"},
    "scheduler": {"scheduler", "handlers", "content", "storage"},
    "handlers": {"handlers", "content", "storage"},
    "content": {"content"},
    "storage": {"storage"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute and relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = path.relative_to(ROOT).parts[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(own if node.level else (node.module or "").split(".")[0])
    return found & set(PACKAGES)


def test_every_package_imports_only_downward():
    offences = []
    for pkg in PACKAGES:
        files = list((ROOT / pkg).rglob("*.py"))
        assert files, f"package {pkg} has no modules"
        for path in files:
            for target in imported_packages(path) - ALLOWED[pkg]:
                offences.append(f"{path.relative_to(ROOT)} imports {target}")
    assert offences == []


def test_checker_catches_an_upward_import(tmp_path, monkeypatch):
    # The checker itself must be able to fail.
    fake = ROOT / "storage" / "_layer_probe.py"
    fake.write_text("from handlers import router\n", encoding="utf-8")
    try:
        assert imported_packages(fake) - ALLOWED["storage"] == {"handlers"}
    finally:
        fake.unlink()
