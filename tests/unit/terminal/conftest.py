"""Fixtures for the terminal tests: a tmux oracle pane and our own terminal, both closed
after the test, and a program environment with a fixed HOME and a UTF-8 locale."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from term_oracle import LocalTerm, TmuxPane, env_for_programs


@pytest.fixture
async def tmux_pane(tmp_path: Path) -> AsyncIterator[TmuxPane]:
    pane = TmuxPane(tmp_path)
    yield pane
    await pane.close()


@pytest.fixture
async def local_term() -> AsyncIterator[LocalTerm]:
    term = LocalTerm()
    yield term
    await term.close()


@pytest.fixture
def program_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return env_for_programs(home)
