"""Engine-level fixtures moved to tests/conftest.py and tests/fixtures/engine.py.

Import helpers from ``tests.fixtures.engine`` (``engine_config``, ``portside``); the
``engine``, ``big_image`` and ``push_image`` fixtures are available to every test directory.
"""

from tests.fixtures.engine import engine_config, portside

__all__ = ["engine_config", "portside"]
