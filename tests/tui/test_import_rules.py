"""Rules 1 and 2 of DESIGN.md, checked on the source: tui/ reaches engines only through the
Docker API (it imports nothing from engine/ except engine.embedded) and engine/ never imports
Textual or tui."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative ones resolved to absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def violations(
    top: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = (), root: Path = ROOT
) -> list[str]:
    """Every import under ``root/top`` of a ``forbidden`` module that is not ``allowed``."""
    paths = sorted((root / top).rglob("*.py"))
    assert paths, f"no Python files under {top}/"
    bad = []
    for path in paths:
        for line, module in imports(path, root):
            hit = any(module == f or module.startswith(f + ".") for f in forbidden)
            ok = any(module == a or module.startswith(a + ".") for a in allowed)
            if hit and not ok:
                bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


def test_tui_reaches_engines_only_through_the_api() -> None:
    assert violations("tui", ("engine",), allowed=("engine.embedded",)) == []


def test_engine_never_imports_textual_or_tui() -> None:
    assert violations("engine", ("textual", "tui", "themes")) == []


def test_the_checker_sees_every_spelling(tmp_path: Path) -> None:
    # The scan must notice each form of a forbidden import, or the rules above prove nothing.
    (tmp_path / "tui" / "sub").mkdir(parents=True)
    (tmp_path / "tui" / "probe.py").write_text(
        "import engine.store\nfrom engine import images\nfrom engine.embedded import x\n"
        "import textual\n"
    )
    (tmp_path / "tui" / "sub" / "inner.py").write_text("def f():\n    from engine import api\n")
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "svc.py").write_text("from ..tui import app\nimport textual.app\n")
    assert violations("tui", ("engine",), ("engine.embedded",), root=tmp_path) == [
        "tui/probe.py:1 imports engine.store",
        "tui/probe.py:2 imports engine",
        "tui/probe.py:2 imports engine.images",
        "tui/sub/inner.py:2 imports engine",
        "tui/sub/inner.py:2 imports engine.api",
    ]
    assert violations("engine", ("textual", "tui"), root=tmp_path) == [
        "engine/svc.py:1 imports tui",
        "engine/svc.py:1 imports tui.app",
        "engine/svc.py:2 imports textual.app",
    ]


def test_the_dashboard_starts_without_the_client_or_the_terminal_stack() -> None:
    # First paint comes before these: aiodocker + aiohttp (~140 ms) are loaded in a thread
    # by tui.client.open_client, the terminal stack (emulator, pyte) with the first session.
    # A module-level import of either on the start path would bring the cost back.
    probe = (
        "import sys\n"
        "import tui.entry, tui.main, tui.launch, tui.app\n"
        "from tui.main import build_parser\n"
        "build_parser(verbs=False)\n"
        "heavy = ('aiodocker', 'aiohttp', 'pyte', 'tui.terminal.core', 'tui.terminal.session',\n"
        "         'tui.cli.images', 'engine')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


def test_the_thin_client_loads_only_what_it_needs() -> None:
    # The launcher runs Python with -S; a verb handed to the command server must get there
    # on built-in modules alone. re (pip's script), enum (signal.py, socket.py) and site
    # each cost milliseconds on every command.
    probe = (
        "import sys\n"
        f"sys.path.insert(1, {str(ROOT)!r})\n"
        "import tui.entry, tui.cmdclient\n"
        "heavy = ('site', 're', 'enum', 'signal', 'socket', 'subprocess', 'tui.main')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd="/", capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
