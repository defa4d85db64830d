"""The command table: unique ids, no default clashes, validated user overrides."""

from __future__ import annotations

from tui import keymap


def test_ids_are_unique_and_scoped() -> None:
    ids = [command.id for command in keymap.COMMANDS]
    assert len(ids) == len(set(ids))
    for command in keymap.COMMANDS:
        assert command.scope in keymap.SCOPE_TITLES
        assert command.id.split(".")[0] in {
            "app",
            "main",
            "table",
            "panel",
            "container",
            "image",
            "unreachable",
            "dialog",
            "confirm",
            "volume",
            "network",
            "logs",
            "inspect",
            "terminal",
            "registry",
            "browse",
        }


def test_defaults_do_not_clash() -> None:
    assert keymap.default_clashes() == []


def test_bindings_carry_ids() -> None:
    bindings = keymap.bindings(keymap.CONTAINERS)
    assert {b.id for b in bindings} == {
        c.id for c in keymap.COMMANDS if c.scope == keymap.CONTAINERS
    }
    assert all(b.id for b in bindings)


def test_normalize_key() -> None:
    assert keymap.normalize_key("?") == "question_mark"
    assert keymap.normalize_key("/") == "slash"
    assert keymap.normalize_key("x") == "x"
    assert keymap.normalize_key(" ctrl+x ") == "ctrl+x"
    assert keymap.split_keys("j, ctrl+n") == ["j", "ctrl+n"]


def test_valid_override_is_kept() -> None:
    accepted, problems = keymap.check_keymap({"container.stop": "x", "app.help": "?,f1"})
    assert accepted == {"container.stop": "x", "app.help": "question_mark,f1"}
    assert problems == []


def test_swapping_two_keys_is_allowed() -> None:
    accepted, problems = keymap.check_keymap({"container.stop": "u", "container.start": "s"})
    assert problems == []
    assert accepted == {"container.stop": "u", "container.start": "s"}


def test_unknown_empty_and_clashing_overrides_are_dropped() -> None:
    accepted, problems = keymap.check_keymap(
        {"container.fly": "f", "container.stop": " , ", "container.kill": "j"}
    )
    assert accepted == {}
    assert len(problems) == 3
    assert "unknown binding id 'container.fly'" in problems[0]
    assert "'container.stop' has no keys" in problems[1]
    assert "'j' for 'container.kill' is already used by 'table.down'" in problems[2]


def test_clash_with_builtin_key() -> None:
    accepted, problems = keymap.check_keymap({"image.pull": "enter"})
    assert accepted == {}
    assert "built-in enter" in problems[0]


def test_same_key_in_unrelated_scopes_is_fine() -> None:
    # The images panel and the containers panel are never focused together.
    accepted, problems = keymap.check_keymap({"image.history": "u"})
    assert problems == [] and accepted == {"image.history": "u"}
