"""The one-way layers: bench -> bot -> scheduler -> handlers -> {content, storage}; nothing imports bench or tests."""

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "bot", "scheduler", "handlers", "content", "storage", "tests")
ALLOWED = {
    # Benchmarks sit on top: they drive the service and borrow the tests' fixtures (keys, schemas).
    "bench": {"bench", "bot", "scheduler", "handlers", "content", "storage", "tests"},
    "bot": {"bot", "scheduler", "handlers", "content", "storage"},
    "scheduler": {"scheduler", "handlers", "content", "storage"},
    "handlers": {"handlers", "content", "storage"},
    "content": {"content"},
    "storage": {"storage"},
}
CHECKED = tuple(ALLOWED)


def imported_packages(path: Path, root: Path = ROOT) -> set[str]:
    """Top-level project packages a module imports (absolute and relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = path.relative_to(root).parts[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(own if node.level else (node.module or "").split(".")[0])
    return found & set(PACKAGES)


def offences(root: Path = ROOT) -> list[str]:
    """Every import that goes against the layers, as `file imports package`."""
    found = []
    for pkg in CHECKED:
        files = list((root / pkg).rglob("*.py"))
        assert files, f"package {pkg} has no modules"
        for path in files:
            for target in imported_packages(path, root) - ALLOWED[pkg]:
                found.append(f"{path.relative_to(root)} imports {target}")
    return found


def test_every_package_imports_only_downward():
    assert offences() == []


def test_checker_catches_an_upward_import(tmp_path):
    # The checker itself must be able to fail: a probe in a copy of the tree, never in the source.
    for pkg in CHECKED:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "storage" / "_layer_probe.py").write_text("from handlers import router\n", encoding="utf-8")
    (tmp_path / "handlers" / "_layer_probe.py").write_text("from tests import factories\n", encoding="utf-8")
    (tmp_path / "bot" / "_layer_probe.py").write_text("import bench.sweep\n", encoding="utf-8")
    assert sorted(offences(tmp_path)) == ["bot/_layer_probe.py imports bench", "handlers/_layer_probe.py imports tests",
                                          "storage/_layer_probe.py imports handlers"]
    assert not (ROOT / "storage" / "_layer_probe.py").exists()
