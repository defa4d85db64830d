"""The image policy: pattern semantics, refusals of real pulls (service and command line),
and the messages run and build (FROM) get, each naming the rule that refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.engine import Engine
from engine.errors import Forbidden, InvalidArgument
from engine.policy import ImagePolicy, check, pattern_matches
from engine.reference import Reference
from tests.fixtures.engine import engine_config, portside
from tests.fixtures.images import BuiltImage
from tests.fixtures.registry import RegistryFixture


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("docker.io", "busybox", True),
        ("docker.io", "ghcr.io/a/b", False),
        ("*.example.com", "reg.example.com/team/app", True),
        ("*.example.com", "example.com/team/app", False),
        ("127.0.0.1:*", "127.0.0.1:5000/app", True),
        ("127.0.0.1:*", "127.0.0.2:5000/app", False),
        ("docker.io/library", "debian:12", True),
        ("docker.io/library", "docker.io/libraryx/debian", False),
        ("docker.io/library/*", "debian", True),
        ("docker.io/library/deb*", "debian", True),
        ("docker.io/library/deb*", "busybox", False),
        ("ghcr.io/org/*/app", "ghcr.io/org/team/app", True),
        ("ghcr.io/org/*/app", "ghcr.io/org/team/other", False),
        ("GHCR.IO/Org", "ghcr.io/org/x", True),
    ],
)
def test_pattern_semantics(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, Reference.parse(name)) is expected


def test_rules_and_messages() -> None:
    policy = ImagePolicy(
        allowed=("docker.io/library", "127.0.0.1:*"),
        denied=("docker.io/library/evil*",),
        require_digest=("docker.io",),
    )
    assert not policy.empty
    digest = "sha256:" + "a" * 64
    policy.check(f"debian@{digest}")
    policy.check("127.0.0.1:5000/app:1", "run")
    with pytest.raises(Forbidden) as denied:
        policy.check(f"evilbox@{digest}", "run")
    assert str(denied.value) == (
        f"run of evilbox@{digest} refused by rule denied_registries "
        "'docker.io/library/evil*' of the engine config"
    )
    with pytest.raises(Forbidden) as outside:
        policy.check("ghcr.io/org/app:1", "build")
    assert str(outside.value).startswith(
        "build (FROM) of ghcr.io/org/app:1 refused by rule allowed_registries: ghcr.io/org/app "
        "matches none of 'docker.io/library', '127.0.0.1:*'"
    )
    with pytest.raises(Forbidden) as pin:
        policy.check("debian:12", "pull")
    assert "refused by rule require_digest 'docker.io'" in str(pin.value)
    assert "debian@sha256:..." in str(pin.value)
    assert Forbidden.status == 403


def test_config_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[engine]\n"
        'allowed-registries = ["127.0.0.1:*"]\n'
        'denied_registries = ["127.0.0.1:*/secret"]\n'
        'require-digest = ["127.0.0.1:*/pinned/*"]\n'
    )
    config = load_config(path, root=tmp_path / "root")
    policy = ImagePolicy.from_config(config)
    assert policy.allowed == ("127.0.0.1:*",)
    check(config, "127.0.0.1:5000/app:1", "run")
    with pytest.raises(Forbidden):
        check(config, "127.0.0.1:5000/secret/thing:1")
    with pytest.raises(Forbidden):
        check(config, "127.0.0.1:5000/pinned/app:1")
    path.write_text('[engine]\nallowed-registries = "ghcr.io"\n')
    with pytest.raises(InvalidArgument) as info:
        ImagePolicy.from_config(load_config(path))
    assert "allowed_registries must be a list" in str(info.value)
    path.write_text('[engine]\ndenied_registries = ["bad pattern"]\n')
    with pytest.raises(InvalidArgument):
        ImagePolicy.from_config(load_config(path))


async def test_engine_pull_obeys_every_rule(
    tmp_path: Path,
    registry: RegistryFixture,
    pushed_images: dict[str, str],
    test_images: dict[str, BuiltImage],
) -> None:
    host = registry.host
    ref = pushed_images["test/busybox:1"]
    cases = [
        ({"denied_registries": [f"{host}/test"]}, f"denied_registries '{host}/test'"),
        ({"allowed_registries": ["ghcr.io"]}, "allowed_registries"),
        ({"require_digest": [host]}, f"require_digest '{host}'"),
    ]
    for i, (rules, rule_text) in enumerate(cases):
        eng = await Engine.open(engine_config(tmp_path / f"root{i}", **rules))
        try:
            with pytest.raises(Forbidden) as info:
                await eng.images.pull(ref)
            assert str(info.value).startswith(f"pull of {ref} refused by rule {rule_text}")
            assert await eng.images.list_images() == []
        finally:
            await eng.close()
    # Pinned by digest, the same image passes the require_digest rule.
    eng = await Engine.open(engine_config(tmp_path / "pinned", require_digest=[host]))
    try:
        digest = test_images["test/busybox:1"].digest
        assert await eng.images.pull(f"{host}/test/busybox@{digest}")
    finally:
        await eng.close()


def test_cli_pull_refused_by_config_file(
    tmp_path: Path, registry: RegistryFixture, pushed_images: dict[str, str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[engine]\ndenied_registries = ["{registry.host}"]\n')
    ref = pushed_images["test/busybox:1"]
    result = portside(
        "pull", "--root", str(tmp_path / "root"), ref, env={"PORTSIDE_CONFIG": str(config)}
    )
    assert result.returncode != 0
    assert f"refused by rule denied_registries '{registry.host}'" in result.stderr
    assert "Traceback" not in result.stderr


async def test_run_obeys_the_policy_by_name_and_by_id(tmp_path, pushed_images):
    """Creating a container is a 'run': refused images cannot be run by name or by id."""
    from engine.engine import Engine
    from engine.errors import Forbidden

    ref = pushed_images["test/busybox:1"]
    config = engine_config(tmp_path / "root")
    eng = await Engine.open(config)
    try:
        image_id = await eng.images.pull(ref)
        config.denied_registries = [ref.rsplit(":", 1)[0]]
        for name in (ref, image_id, image_id[7:19]):
            with pytest.raises(Forbidden, match=r"run of .* refused by rule denied_registries"):
                await eng.containers.create({"Image": name, "Cmd": ["true"]})
        assert await eng.containers.list_containers(all=True) == []
        config.denied_registries = []
        created = await eng.containers.create({"Image": image_id[7:19], "Cmd": ["true"]})
        await eng.containers.remove(created["Id"], force=True)
    finally:
        await eng.close()
