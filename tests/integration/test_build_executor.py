"""BuildService end to end on a real engine: config instructions, COPY/ADD layers, RUN in real
containers (crun), multi-stage with COPY --from and --target, and the on-disk cache."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.build.context import BuildContext
from engine.build.executor import DEFAULT_PATH, BuildError
from engine.build.service import BuildService
from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.errors import InvalidArgument
from engine.store.snapshots import merged_view
from tests.fixtures.containers import prepare_root
from tests.fixtures.engine import engine_config
from tests.fixtures.trees import Tree, tree_of_dir


@pytest.fixture(scope="module")
def build_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("build") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


@dataclass
class Builder:
    engine: Engine
    service: BuildService
    lines: list[str] = field(default_factory=list)

    async def build(self, ctx_dir: Path, dockerfile: str, **kw: Any) -> str:
        (ctx_dir / "Dockerfile").write_text(dockerfile)
        self.lines.clear()
        async with await BuildContext.from_directory(ctx_dir) as ctx:
            return await self.service.build(ctx, progress=self.lines.append, **kw)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def config(self, image_id: str) -> dict[str, Any]:
        return await self.engine.images.config(image_id)

    async def tree(self, image_id: str) -> Tree:
        cfg = await self.config(image_id)
        diff_ids = [Digest.parse(d) for d in cfg["rootfs"]["diff_ids"]]
        async with merged_view(self.engine.snapshots, chain_ids(diff_ids)[-1]) as root:
            return tree_of_dir(root)


async def _open(root: Path) -> AsyncIterator[Builder]:
    eng = await Engine.open(engine_config(root))
    try:
        yield Builder(eng, eng.builds)
    finally:
        await eng.close()


@pytest.fixture
async def b(build_root: Path) -> AsyncIterator[Builder]:
    async for builder in _open(build_root):
        yield builder


async def test_config_instructions(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
ARG VERSION=1.0
ENV APP=/srv/app GREETING="hello world"
ENV WHERE=$APP/bin
LABEL org.test.version=$VERSION "second label"=yes
WORKDIR $APP
WORKDIR sub
USER 1000:1000
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data", "/logs"]
ENTRYPOINT ["/bin/echo"]
CMD ["one", "two"]
HEALTHCHECK --interval=5s --retries=4 CMD true
STOPSIGNAL SIGKILL
ONBUILD RUN echo later
MAINTAINER someone
"""
    image_id = await b.build(tmp_path, dockerfile, build_args={"VERSION": "2.5"}, tags=["app:v1"])
    cfg = await b.config(image_id)
    c = cfg["config"]
    assert "APP=/srv/app" in c["Env"] and "GREETING=hello world" in c["Env"]
    assert "WHERE=/srv/app/bin" in c["Env"]
    assert any(e.startswith("PATH=") for e in c["Env"])
    assert c["Labels"] == {"org.test.version": "2.5", "second label": "yes"}
    assert c["WorkingDir"] == "/srv/app/sub"
    assert c["User"] == "1000:1000"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert c["Volumes"] == {"/data": {}, "/logs": {}}
    assert c["Entrypoint"] == ["/bin/echo"] and c["Cmd"] == ["one", "two"]
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 5_000_000_000,
        "Retries": 4,
    }
    assert c["StopSignal"] == "SIGKILL"
    assert c["OnBuild"] == ["RUN echo later"]
    base = await b.config(await b.engine.images.resolve(busybox))
    history = cfg["history"][len(base["history"]) :]
    assert len(history) == 15
    assert history[0]["created_by"] == "/bin/sh -c #(nop)  ARG VERSION=1.0"
    # WORKDIR makes the missing directories in a layer, as the legacy builder does
    assert history[4]["created_by"] == "/bin/sh -c #(nop) WORKDIR /srv/app"
    assert [i for i, h in enumerate(history) if not h.get("empty_layer")] == [4, 5]
    diff_ids = cfg["rootfs"]["diff_ids"]
    assert diff_ids[:-2] == base["rootfs"]["diff_ids"] and len(diff_ids) == len(diff_ids[:-2]) + 2
    tree = await b.tree(image_id)
    assert tree["srv/app/sub"].type == "dir" and tree["srv/app/sub"].mode == 0o755
    assert await b.engine.images.resolve("app:v1") == image_id
    assert "Step 1/16 : FROM" in b.output and "Step 16/16 : MAINTAINER someone" in b.output
    assert f"Successfully built {image_id[7:19]}" in b.output
    assert "Successfully tagged app:v1" in b.output


async def test_entrypoint_resets_inherited_cmd(b: Builder, busybox: str, tmp_path: Path) -> None:
    base_cmd = (await b.config(await b.engine.images.resolve(busybox)))["config"].get("Cmd")
    assert base_cmd  # the fixture image has a CMD to inherit
    image_id = await b.build(tmp_path, f"FROM {busybox}\nENTRYPOINT top -b\n")
    c = (await b.config(image_id))["config"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "top -b"]
    assert "Cmd" not in c
    image_id = await b.build(
        tmp_path,
        f'FROM {busybox}\nSHELL ["/bin/sh", "-ec"]\nCMD echo hi\n',
        labels={"from.cli": "yes", "cost": '$5 \\ "each"'},
    )
    c = (await b.config(image_id))["config"]
    assert c["Shell"] == ["/bin/sh", "-ec"] and c["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert c["Labels"] == {"from.cli": "yes", "cost": '$5 \\ "each"'}
    assert "Step 4/4 : LABEL" in b.output


async def test_onbuild_triggers_and_build_args(b: Builder, busybox: str, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("trigger file\n")
    parent = f"FROM {busybox}\nONBUILD COPY t.txt /from-trigger.txt\nONBUILD RUN echo ran > /ran\n"
    parent_id = await b.build(tmp_path, parent, tags=["onbuild-parent:1"])
    assert (await b.config(parent_id))["config"]["OnBuild"] == [
        "COPY t.txt /from-trigger.txt",
        "RUN echo ran > /ran",
    ]
    child = await b.build(
        tmp_path,
        "FROM onbuild-parent:1\nARG USED\nRUN echo used=$USED proxy=$HTTP_PROXY\n",
        build_args={"USED": "u", "NOT_USED": "x", "HTTP_PROXY": "http://127.0.0.1:9"},
    )
    assert "# Executing 2 build triggers" in b.output
    assert "used=u proxy=http://127.0.0.1:9" in b.output
    assert "[Warning] One or more build-args [NOT_USED] were not consumed" in b.output
    cfg = await b.config(child)
    assert "OnBuild" not in cfg["config"]
    assert "127.0.0.1:9" not in str(cfg)
    tree = await b.tree(child)
    assert tree["from-trigger.txt"].size == 13 and "ran" in tree
    # proxy values stay out of the cache key
    await b.build(
        tmp_path,
        "FROM onbuild-parent:1\nARG USED\nRUN echo used=$USED proxy=$HTTP_PROXY\n",
        build_args={"USED": "u", "HTTP_PROXY": "http://127.0.0.1:10"},
    )
    assert " ---> Running in " not in b.output


async def test_copy_and_run(b: Builder, busybox: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")
    (tmp_path / "skip.log").write_text("no\n")
    (tmp_path / ".dockerignore").write_text("*.log\nsrc/secret\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.sh").write_text("echo main\n")
    os.chmod(src / "main.sh", 0o755)
    (src / "secret").write_text("hidden\n")
    os.symlink("main.sh", src / "link")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"from the archive\n"
        info = tarfile.TarInfo("inner/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "bundle.tar.gz").write_bytes(buf.getvalue())
    dockerfile = f"""FROM {busybox}
COPY a.txt /opt/one
COPY *.txt /opt/many/
COPY src /opt/src
COPY --chown=1000:2000 --chmod=600 b.txt /opt/owned/
ADD bundle.tar.gz /opt/unpacked
ADD bundle.tar.gz /opt/
WORKDIR /work
COPY a.txt .
RUN echo ran > /opt/ran.txt && rm /opt/many/b.txt && echo "out: $(cat /opt/one)"
RUN ["/bin/sh", "-c", "echo exec form > /opt/exec.txt"]
"""
    image_id = await b.build(tmp_path, dockerfile)
    tree = await b.tree(image_id)
    assert tree["opt/one"].type == "file" and tree["opt/one"].size == 6
    assert "opt/many/a.txt" in tree and "opt/many/b.txt" not in tree
    assert "opt/many/skip.log" not in tree
    assert tree["opt/src/main.sh"].mode == 0o755
    assert tree["opt/src/link"].type == "symlink" and tree["opt/src/link"].target == "main.sh"
    assert "opt/src/secret" not in tree and "opt/src/src" not in tree
    owned = tree["opt/owned/b.txt"]
    assert (owned.uid, owned.gid, owned.mode) == (1000, 2000, 0o600)
    assert tree["opt/unpacked/inner/file.txt"].size == 17
    assert tree["opt/inner/file.txt"].size == 17
    assert "opt/bundle.tar.gz" not in tree
    assert tree["work/a.txt"].size == 6
    assert tree["opt/ran.txt"].size == 4
    assert tree["opt/exec.txt"].type == "file"
    assert "out: alpha" in b.output
    assert " ---> Running in " in b.output
    cfg = await b.config(image_id)
    history = cfg["history"]
    copies = [h["created_by"] for h in history if " COPY " in h["created_by"]]
    assert len(copies) == 5 and copies[0].startswith("/bin/sh -c #(nop) COPY file:")
    assert copies[0].endswith(" in /opt/one ")
    assert any(h["created_by"].startswith("/bin/sh -c #(nop) COPY dir:") for h in history)
    # no container of the build is left behind
    assert await b.engine.containers.list_containers(all=True) == []


async def test_cache(b: Builder, busybox: str, tmp_path: Path, build_root: Path) -> None:
    (tmp_path / "first.txt").write_text("1\n")
    (tmp_path / "second.txt").write_text("2\n")
    dockerfile = f"""FROM {busybox}
ENV A=1
COPY first.txt /first.txt
RUN echo step-ran-$RANDOM > /ran
COPY second.txt /second.txt
RUN cat /second.txt
"""
    first = await b.build(tmp_path, dockerfile)
    assert "Using cache" not in b.output
    # the cache lives on disk: a fresh engine on the same root hits every step
    async for fresh in _open(build_root):
        again = await fresh.build(tmp_path, dockerfile)
        assert again == first
        assert fresh.output.count(" ---> Using cache") == 5
        assert " ---> Running in " not in fresh.output
    # touching without a content change keeps the cache
    os.utime(tmp_path / "second.txt", (1, 1))
    assert await b.build(tmp_path, dockerfile) == first
    assert b.output.count(" ---> Using cache") == 5
    # changing the second file reruns from the step that reads it
    (tmp_path / "second.txt").write_text("two\n")
    changed = await b.build(tmp_path, dockerfile)
    assert changed != first
    assert b.output.count(" ---> Using cache") == 3
    assert "two" in b.output
    # --no-cache runs everything again
    await b.build(tmp_path, dockerfile, no_cache=True)
    assert "Using cache" not in b.output
    # a build arg value is part of the key of the steps after its ARG
    arg_df = f"FROM {busybox}\nARG X=1\nRUN echo $X\n"
    await b.build(tmp_path, arg_df)
    await b.build(tmp_path, arg_df, build_args={"X": "2"})
    assert "Using cache" not in b.output and "2\n" in b.output


async def test_stages_sharing_steps_rebuild_from_cache(
    b: Builder, busybox: str, tmp_path: Path
) -> None:
    """Two stages that start with the same step build concurrently: they share one chain
    of cache entries, so a rebuild runs nothing, and COPY --from keeps the owners."""
    dockerfile = f"""FROM {busybox} AS one
ARG VERSION=1.0
RUN mkdir /out && echo one-$VERSION-$RANDOM > /out/one && chown -R 1000:50 /out

FROM {busybox}
ARG VERSION=1.0
RUN echo two-$VERSION-$RANDOM > /two
COPY --from=one /out/ /copied/
"""
    first = await b.build(tmp_path, dockerfile)
    again = await b.build(tmp_path, dockerfile)
    assert again == first
    assert b.output.count(" ---> Using cache") == 5
    assert " ---> Running in " not in b.output
    tree = await b.tree(first)
    assert (tree["copied/one"].uid, tree["copied/one"].gid) == (1000, 50)
    assert (tree["copied"].uid, tree["copied"].gid) == (0, 0)


async def test_failing_run(b: Builder, busybox: str, tmp_path: Path) -> None:
    with pytest.raises(BuildError) as info:
        await b.build(tmp_path, f"FROM {busybox}\nRUN echo bad; exit 3\n", tags=["never:1"])
    assert (
        str(info.value) == "The command '/bin/sh -c echo bad; exit 3' returned a non-zero code: 3"
    )
    assert "bad" in b.output
    assert await b.engine.containers.list_containers(all=True) == []
    with pytest.raises(Exception, match="No such image"):
        await b.engine.images.resolve("never:1")


async def test_multi_stage_and_target(b: Builder, busybox: str, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("input\n")
    dockerfile = f"""FROM {busybox} AS builder
COPY in.txt /src/in.txt
RUN mkdir /out /real && cp /src/in.txt /out/made.txt && echo extra > /out/extra && \
    ln -s /out/made.txt /abs-link && ln -s /real /linked
WORKDIR /linked/sub

FROM builder AS unused
RUN echo unused-stage-ran

FROM scratch AS final
COPY --from=builder /out/ /app/
COPY --from=0 /src/in.txt /app/copied.txt
COPY --from=builder /abs-link /app/via-link.txt
ENV MODE=final
CMD ["/app/run"]
"""
    image_id = await b.build(tmp_path, dockerfile, tags=["multi:final"])
    assert "unused-stage-ran" not in b.output
    cfg = await b.config(image_id)
    assert len(cfg["rootfs"]["diff_ids"]) == 3
    tree = await b.tree(image_id)
    assert set(tree) == {"app", "app/made.txt", "app/extra", "app/copied.txt", "app/via-link.txt"}
    assert tree["app/via-link.txt"].sha256 == tree["app/made.txt"].sha256
    assert cfg["config"]["Cmd"] == ["/app/run"]
    # FROM scratch starts with dockerd's default PATH, and an empty User and WorkingDir
    assert cfg["config"]["Env"] == [f"PATH={DEFAULT_PATH}", "MODE=final"]
    assert cfg["config"]["User"] == "" and cfg["config"]["WorkingDir"] == ""
    builder_only = await b.build(tmp_path, dockerfile, target="builder")
    assert "Step 4/4" in b.output and "Step 5/" not in b.output
    btree = await b.tree(builder_only)
    assert "out/made.txt" in btree and "bin/busybox" in btree
    # WORKDIR through an absolute symlink makes the directory at its real place
    assert btree["linked"].type == "symlink" and btree["real/sub"].type == "dir"
    with pytest.raises(InvalidArgument, match="target stage 'nope' not found"):
        await b.build(tmp_path, dockerfile, target="nope")


async def test_bad_input(b: Builder, busybox: str, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"missing\.txt"):
        await b.build(tmp_path, f"FROM {busybox}\nCOPY missing.txt /x\n")
    (tmp_path / "one").write_text("1")
    (tmp_path / "two").write_text("2")
    with pytest.raises(InvalidArgument, match="must be a directory and end with a /"):
        await b.build(tmp_path, f"FROM {busybox}\nCOPY one two /dest\n")
    with pytest.raises(InvalidArgument, match="FROM scratch"):
        await b.build(tmp_path, "FROM scratch\nRUN true\n")
    with pytest.raises(InvalidArgument, match="cannot tag with a digest"):
        await b.build(tmp_path, "FROM scratch\nENV A=1\n", tags=["x@sha256:" + "0" * 64])


async def test_policy_checks_from_but_not_intermediate_images(
    b: Builder, busybox: str, tmp_path: Path
) -> None:
    """With a policy set, RUN steps still work on unnamed intermediate images, and a
    refused FROM says which rule refused it."""
    config = b.engine.config
    repo = busybox.rsplit(":", 1)[0]
    try:
        config.denied_registries = ["example.invalid"]
        image_id = await b.build(tmp_path, f"FROM {busybox}\nRUN echo hi > /x\n", no_cache=True)
        assert image_id.startswith("sha256:")
        config.denied_registries = [repo]
        with pytest.raises(Exception, match=r"build \(FROM\) of .* refused by rule denied"):
            await b.build(tmp_path, f"FROM {busybox}\nRUN true\n", no_cache=True)
    finally:
        config.denied_registries = []
