"""The [dashboard] table of the config file: where it is read from and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.config import (
    DEFAULT_REFRESH_INTERVAL,
    ConfigError,
    config_path,
    load_dashboard_config,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_locations(tmp_path: Path) -> None:
    assert config_path({"PORTSIDE_CONFIG": "/x/y.toml"}) == Path("/x/y.toml")
    assert config_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/portside/config.toml")
    assert config_path({"HOME": "/home/u"}) == Path("/home/u/.config/portside/config.toml")


def test_missing_default_file_means_defaults(tmp_path: Path) -> None:
    config = load_dashboard_config({"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.theme is None and dict(config.keymap) == {}
    assert config.refresh_interval == DEFAULT_REFRESH_INTERVAL and config.path is None


def test_reads_theme_keymap_and_interval(tmp_path: Path) -> None:
    path = write(
        tmp_path / "portside" / "config.toml",
        """
[engine]
runtime = "crun"

[dashboard]
theme = "light"
refresh_interval = 20

[dashboard.keymap]
"container.stop" = "x"
"table.down" = ["j", "ctrl+n"]
""",
    )
    config = load_dashboard_config({"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.path == path
    assert config.theme == "light"
    assert config.refresh_interval == 20.0
    assert dict(config.keymap) == {"container.stop": "x", "table.down": "j,ctrl+n"}
    assert config.problems == ()


def test_portside_config_wins_and_must_exist(tmp_path: Path) -> None:
    other = write(tmp_path / "other.toml", '[dashboard]\ntheme = "colorblind"\n')
    write(tmp_path / "portside" / "config.toml", '[dashboard]\ntheme = "light"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path), "PORTSIDE_CONFIG": str(other)}
    assert load_dashboard_config(env).theme == "colorblind"
    with pytest.raises(ConfigError, match="PORTSIDE_CONFIG"):
        load_dashboard_config({"PORTSIDE_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dashboard\ntheme=1", "is not valid TOML"),
        ('dashboard = "x"', "must be a table"),
        ("[dashboard]\ntheme = 3", "theme must be a theme name"),
        ("[dashboard]\nrefresh_interval = 'soon'", "refresh_interval must be a number"),
        ("[dashboard]\nrefresh_interval = 0.5", "between 2 and 600 seconds, not 0.5"),
        ("[dashboard]\nkeymap = 'x'", "keymap must be a table"),
        ("[dashboard.keymap]\n'container.stop' = 5", "keymap.container.stop must be a key"),
    ],
)
def test_bad_settings_get_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_dashboard_config({"PORTSIDE_CONFIG": str(path)})
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_settings_are_reported_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[dashboard]\nthemme = "dark"\n')
    config = load_dashboard_config({"PORTSIDE_CONFIG": str(path)})
    assert len(config.problems) == 1 and "'themme'" in config.problems[0]


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_dashboard_config({"PORTSIDE_CONFIG": str(path)})
