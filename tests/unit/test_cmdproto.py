"""The command server's shared rules: which command lines go warm, the code key, the
private directory and the staleness check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui import cmdproto, cmdserver


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["ps", "-a"], "ps"),
        (["-H", "unix:///x.sock", "run", "--rm", "img"], "run"),
        (["--host=unix:///x.sock", "images"], "images"),
        (["--root", "/r", "--insecure-registry", "h:5000", "pull", "x"], "pull"),
        (["--theme", "light"], None),
        ([], None),
        (["-D"], None),
        (["--", "ps"], "ps"),
    ],
)
def test_the_verb_is_found_without_argparse(argv: list[str], verb: str | None) -> None:
    assert cmdproto.verb_of(argv) == verb


def test_the_dashboard_and_serve_never_go_warm() -> None:
    assert cmdproto.warm_eligible(["run", "x"])
    assert not cmdproto.warm_eligible(["serve", "--socket", "/s"])
    assert not cmdproto.warm_eligible(["--theme", "dark"])


def test_the_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cmdproto.DISABLE_ENV, "0")
    assert not cmdproto.enabled()
    monkeypatch.setenv(cmdproto.DISABLE_ENV, "1")
    assert cmdproto.enabled()


def test_the_code_key_is_stable_and_names_the_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cmdproto.code_key() == cmdproto.code_key()
    assert len(cmdproto.code_key()) == 16
    monkeypatch.setenv(cmdproto.DIR_ENV, str(tmp_path / "d"))
    path = cmdproto.socket_path("0123456789abcdef")
    assert path == str(tmp_path / "d" / "cmd-0123456789abcdef.sock")
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o700


def test_a_shared_or_linked_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(cmdproto.DIR_ENV, str(shared))
    with pytest.raises(PermissionError):
        cmdproto.server_dir()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(private)
    monkeypatch.setenv(cmdproto.DIR_ENV, str(link))
    with pytest.raises(PermissionError):
        cmdproto.server_dir()


def test_a_changed_module_file_makes_the_server_stale(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("x = 1\n")
    files = {str(module): module.stat().st_mtime_ns}
    assert not cmdserver._stale(files)
    os.utime(module, ns=(1, 1))
    assert cmdserver._stale(files)
    module.unlink()
    assert cmdserver._stale({str(module): 1})


def test_the_launcher_and_a_plain_interpreter_share_a_server() -> None:
    """The launcher's ``python -S`` has no venv prefix yet; it must still name the server
    ``python`` and ``python3`` of the same venv use."""
    probe = (
        f"import sys; sys.path.insert(1, {str(Path(cmdproto.__file__).parents[1])!r}); "
        "from tui import cmdproto; print(cmdproto.code_key())"
    )
    keys = {
        subprocess.run(
            [sys.executable, *flags, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        for flags in ([], ["-S"])
    }
    assert len(keys) == 1 and "" not in keys
