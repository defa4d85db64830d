"""Acceptance against dockerd 20.10's legacy builder (``DOCKER_BUILDKIT=0``): the history
text of RUN steps (``|N K=V`` build-arg prefix, empty_layer for a RUN that changes
nothing), COPY/ADD (``--chown``), EXPOSE, WORKDIR and SHELL history text, MAINTAINER as
the author, and ``ADD <url>`` (mode 0600, mtime from Last-Modified, archives not
extracted) give the same image from the same Dockerfile."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.build.context import BuildContext
from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.store.snapshots import merged_view
from tests.fixtures.engine import engine_config
from tests.fixtures.procs import run_docker_cli
from tests.fixtures.trees import Tree, tree_of_dir, tree_of_tar

BUILD_ARGS = {"B": "2", "HTTP_PROXY": "http://127.0.0.1:9"}
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
_HASH = re.compile(r"[0-9a-f]{64}")
FILES = {"/tool.sh": b"#!/bin/sh\necho tool\n"}


@pytest.fixture
async def http_base() -> AsyncIterator[str]:
    """A local aiohttp file server on 127.0.0.1 (dockerd downloads from the host too)."""

    async def handler(request: web.Request) -> web.Response:
        body = FILES.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, headers={"Last-Modified": LAST_MODIFIED})

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _dockerfile(base: str, url: str) -> str:
    return f"""FROM {base}
RUN true
ARG A=1
ARG B
RUN echo hi
ENV E=2
RUN echo "$A" > /opt/a || (mkdir -p /opt && echo "$A" > /opt/a)
COPY f.txt /opt/dst
COPY f.txt d /opt/many/
ADD {url}/tool.sh /opt/
ADD {url}/tool.sh /opt/renamed
MAINTAINER someone <someone@example.com>
ARG P=443
EXPOSE 8080 80/udp $P
WORKDIR /tmp/
WORKDIR rel
COPY --chown=1:2 f.txt /opt/owned
SHELL ["/bin/sh", "-ec"]
RUN echo shell > /opt/shell
CMD ["x"]
"""


def _docker_image(dockerd: Any, ctx: Path) -> tuple[dict[str, Any], Tree, str]:
    tag = f"portside-features:{uuid.uuid4().hex[:12]}"
    env = {**dockerd.env, "DOCKER_BUILDKIT": "0"}

    def run(*args: str) -> str:
        return run_docker_cli(dockerd.cli, env, args, check=True, timeout=300).stdout

    args = [f"--build-arg={k}={v}" for k, v in BUILD_ARGS.items()]
    run("build", "-q", *args, "-t", tag, str(ctx))
    cid = ""
    try:
        cid = run("create", tag, "/nothing").strip()
        saved = _binary(dockerd, env, "save", tag)
        with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        tree = tree_of_tar(io.BytesIO(_binary(dockerd, env, "export", cid)))
        mtime = run("run", "--rm", tag, "stat", "-c", "%Y", "/opt/tool.sh").strip()
    finally:
        if cid:
            run("rm", "-f", cid)
        run("rmi", "-f", tag)
    return config, {k: v for k, v in tree.items() if k.startswith("opt")}, mtime


def _binary(dockerd: Any, env: dict[str, str], *args: str) -> bytes:
    return subprocess.run(
        [dockerd.cli, *args], env=env, capture_output=True, check=True, timeout=300
    ).stdout


async def _portside_image(root: Path, ctx: Path) -> tuple[dict[str, Any], Tree, str]:
    eng = await Engine.open(engine_config(root))
    try:
        async with await BuildContext.from_directory(ctx) as context:
            image_id = await eng.builds.build(context, build_args=BUILD_ARGS)
        config = await eng.images.config(image_id)
        diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
        async with merged_view(eng.snapshots, chain_ids(diff_ids)[-1]) as tree_root:
            tree = tree_of_dir(tree_root)
            mtime = str(int((tree_root / "opt/tool.sh").stat().st_mtime))
    finally:
        await eng.close()
    return config, {k: v for k, v in tree.items() if k.startswith("opt")}, mtime


@pytest.mark.usefixtures("dockerd")
async def test_history_and_add_url_match_docker(
    dockerd: Any, pushed_images: dict[str, str], tmp_path: Path, http_base: str
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "f.txt").write_text("x\n")
    (ctx / "d" / "g").write_text("g\n")
    (ctx / "Dockerfile").write_text(_dockerfile(pushed_images["test/busybox:1"], http_base))
    # dockerd downloads from our server: keep the event loop free while it builds
    theirs, their_tree, their_mtime = await asyncio.to_thread(_docker_image, dockerd, ctx)
    ours, our_tree, our_mtime = await _portside_image(tmp_path / "root", ctx)

    def shape(cfg: dict[str, Any]) -> list[tuple[bool, str]]:
        return [(bool(h.get("empty_layer")), h.get("created_by", "")) for h in cfg["history"]]

    mine, other = shape(ours), shape(theirs)
    assert [e for e, _ in mine] == [e for e, _ in other]
    assert len(ours["rootfs"]["diff_ids"]) == len(theirs["rootfs"]["diff_ids"])
    for (_, text), (_, want) in zip(mine, other, strict=True):
        if " COPY " in want or " ADD " in want:
            # the content hash is dockerd's tarsum: the rest must be the same
            assert _HASH.sub("<hash>", text) == _HASH.sub("<hash>", want)
        else:
            assert text == want
    assert "|2 A=1 B=2 /bin/sh -c echo hi" in [t for _, t in other]  # what we compare to
    assert their_mtime == our_mtime == "1445412480"
    assert ours.get("author") == theirs.get("author") == "someone <someone@example.com>"
    for key in ("WorkingDir", "ExposedPorts", "Shell", "Env", "Cmd"):
        assert ours["config"].get(key) == theirs["config"].get(key), key
    assert {k: v.describe() for k, v in our_tree.items()} == {
        k: v.describe() for k, v in their_tree.items()
    }
    assert our_tree["opt/tool.sh"].mode == 0o600
