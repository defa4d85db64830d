"""BuildKit-era Dockerfile features on a real engine (crun): RUN --mount (cache, bind, tmpfs,
secret), heredocs, concurrent stages, and the legacy builder's RUN history text and
empty-layer rule."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.build.context import BuildContext
from engine.build.executor import BuildError
from engine.build.mounts import cache_dir
from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.errors import InvalidArgument
from engine.store.snapshots import merged_view
from tests.fixtures.containers import prepare_root
from tests.fixtures.engine import engine_config
from tests.fixtures.trees import Tree, tree_of_dir


@pytest.fixture(scope="module")
def build_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("build-features") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


@pytest.fixture
def busybox(pushed_images: dict[str, str]) -> str:
    return pushed_images["test/busybox:1"]


@dataclass
class Builder:
    engine: Engine
    root: Path
    lines: list[str] = field(default_factory=list)

    async def build(self, ctx_dir: Path, dockerfile: str, **kw: Any) -> str:
        ctx_dir.mkdir(parents=True, exist_ok=True)
        (ctx_dir / "Dockerfile").write_text(dockerfile)
        self.lines.clear()
        async with await BuildContext.from_directory(ctx_dir) as ctx:
            return await self.engine.builds.build(ctx, progress=self.lines.append, **kw)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def config(self, image_id: str) -> dict[str, Any]:
        return await self.engine.images.config(image_id)

    async def new_history(self, image_id: str, base: str) -> list[dict[str, Any]]:
        cfg = await self.config(image_id)
        base_cfg = await self.config(await self.engine.images.resolve(base))
        return cfg["history"][len(base_cfg["history"]) :]

    async def tree(self, image_id: str) -> Tree:
        cfg = await self.config(image_id)
        diff_ids = [Digest.parse(d) for d in cfg["rootfs"]["diff_ids"]]
        async with merged_view(self.engine.snapshots, chain_ids(diff_ids)[-1]) as root:
            return tree_of_dir(root)

    async def file(self, image_id: str, path: str) -> bytes | None:
        """The content of ``path`` in the image, None when it is missing."""
        cfg = await self.config(image_id)
        diff_ids = [Digest.parse(d) for d in cfg["rootfs"]["diff_ids"]]
        async with merged_view(self.engine.snapshots, chain_ids(diff_ids)[-1]) as root:
            real = root / path
            return real.read_bytes() if real.is_file() and not real.is_symlink() else None


@pytest.fixture
async def b(build_root: Path) -> AsyncIterator[Builder]:
    eng = await Engine.open(engine_config(build_root))
    try:
        yield Builder(eng, build_root)
    finally:
        await eng.close()


# -- history text and empty layers (checked against dockerd 20.10's legacy builder) --------
async def test_run_history_like_legacy_builder(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
RUN true
ARG A=1
ARG B
RUN echo hi
ENV E=2
RUN echo "$A" > /a
CMD ["x"]
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile, build_args={"B": "2"})
    shape = [
        (h["created_by"], bool(h.get("empty_layer")))
        for h in await b.new_history(image_id, busybox)
    ]
    # what dockerd 20.10 (DOCKER_BUILDKIT=0) records for the same Dockerfile
    assert shape == [
        ("/bin/sh -c true", True),
        ("/bin/sh -c #(nop)  ARG A=1", True),
        ("/bin/sh -c #(nop)  ARG B", True),
        ("|2 A=1 B=2 /bin/sh -c echo hi", True),
        ("/bin/sh -c #(nop)  ENV E=2", True),
        ('|2 A=1 B=2 /bin/sh -c echo "$A" > /a', False),
        ('/bin/sh -c #(nop)  CMD ["x"]', True),
    ]
    assert await b.file(image_id, "a") == b"1\n"


async def test_run_failure_carries_exit_code(b: Builder, busybox: str, tmp_path: Path) -> None:
    with pytest.raises(BuildError) as info:
        await b.build(tmp_path / "ctx", f"FROM {busybox}\nRUN exit 3\n")
    assert info.value.exit_code == 3
    assert "returned a non-zero code: 3" in str(info.value)


# -- RUN --mount ---------------------------------------------------------------------------
async def test_cache_mount_persists_across_builds(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
RUN --mount=type=cache,id=feat-counter,target=/cache,mode=0750,uid=7,gid=8 \\
    echo x >> /cache/log && wc -l < /cache/log > /count && stat -c %a:%u:%g /cache > /meta
"""
    first = await b.build(tmp_path / "ctx", dockerfile)
    assert await b.file(first, "count") == b"1\n"
    assert await b.file(first, "meta") == b"750:7:8\n"
    assert await b.file(first, "cache/log") is None  # only the mountpoint stub: left out
    assert "cache" not in await b.tree(first)
    second = await b.build(tmp_path / "ctx", dockerfile + "RUN true\n", no_cache=True)
    assert await b.file(second, "count") == b"2\n"
    host = cache_dir(b.root, "feat-counter")
    assert (host / "log").read_text() == "x\nx\n"


async def test_cache_mount_locked_and_from_stage(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox} AS seed
RUN mkdir -p /seed/sub && echo seeded > /seed/sub/s.txt
FROM {busybox}
RUN --mount=type=cache,id=feat-seeded,target=/c,from=seed,source=/seed,sharing=locked \\
    cat /c/sub/s.txt > /got
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile)
    assert await b.file(image_id, "got") == b"seeded\n"


async def test_bind_mounts_context_stage_and_rw_discarded(
    b: Builder, busybox: str, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "in.txt").write_text("from context\n")
    (ctx / "src" / "secret.key").write_text("ignored\n")
    (ctx / ".dockerignore").write_text("src/secret.key\n")
    dockerfile = f"""FROM {busybox} AS tools
RUN echo tool > /tool.txt
FROM {busybox}
RUN --mount=type=bind,source=src,target=/m \\
    cat /m/in.txt > /one && ls /m > /listing && (touch /m/new 2>/dev/null || echo ro > /ro)
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t.txt cat /t.txt > /two
RUN --mount=type=bind,source=src,target=/w,rw echo changed > /w/in.txt && cat /w/in.txt > /three
RUN --mount=type=bind,from={busybox},target=/img ls /img/bin/busybox > /four
"""
    image_id = await b.build(ctx, dockerfile)
    assert await b.file(image_id, "one") == b"from context\n"
    assert await b.file(image_id, "listing") == b"in.txt\n"  # .dockerignore respected
    assert await b.file(image_id, "ro") == b"ro\n"
    assert await b.file(image_id, "two") == b"tool\n"
    assert await b.file(image_id, "three") == b"changed\n"
    assert await b.file(image_id, "four") == b"/img/bin/busybox\n"  # from an image
    assert (ctx / "src" / "in.txt").read_text() == "from context\n"  # rw writes discarded


async def test_tmpfs_mount(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
RUN --mount=type=tmpfs,target=/scratch,size=1m \\
    echo junk > /scratch/junk && grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4 > /fstype
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile)
    fstype, options = (await b.file(image_id, "fstype") or b"").decode().split()
    assert fstype == "tmpfs" and "size=1024k" in options.split(",")
    assert "scratch/junk" not in await b.tree(image_id)


async def test_secret_mount_not_in_image(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
RUN --mount=type=secret,id=token \\
    --mount=type=secret,id=other,target=/etc/other,mode=0440,uid=5 \\
    --mount=type=secret,id=absent \\
    cat /run/secrets/token > /seen && stat -c %a:%u /etc/other > /meta \\
    && test ! -e /run/secrets/absent
"""
    secrets = {"token": b"s3cr3t-value", "other": b"x"}
    image_id = await b.build(tmp_path / "ctx", dockerfile, secrets=secrets)
    assert await b.file(image_id, "seen") == b"s3cr3t-value"
    assert await b.file(image_id, "meta") == b"440:5\n"
    tree = await b.tree(image_id)
    assert not any(p.startswith(("run/secrets", "etc/other")) for p in tree)
    history = json.dumps(await b.config(image_id))
    assert "s3cr3t" not in history
    with pytest.raises(InvalidArgument, match="secret 'need' not found"):
        await b.build(
            tmp_path / "ctx2", f"FROM {busybox}\nRUN --mount=type=secret,id=need,required true\n"
        )


@pytest.mark.parametrize(
    ("mount", "problem"),
    [
        ("type=bind,source=../../etc,target=/x", "'..' is not allowed"),
        ("type=cache,id=../../x,target=/x", "must not be absolute or contain '..'"),
        ("type=bind,target=relative", "must be an absolute path"),
        ("type=bind,source=missing,target=/x", "not found in the build context"),
        ("type=bind,target=/x,bind-propagation=rshared", "is not allowed"),
        ("type=ssh", "type=ssh is not supported"),
    ],
)
async def test_mount_validation(
    b: Builder, busybox: str, tmp_path: Path, mount: str, problem: str
) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        await b.build(tmp_path / "ctx", f"FROM {busybox}\nRUN --mount={mount} true\n")


# -- heredocs ------------------------------------------------------------------------------
async def test_run_heredocs(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
ARG WHO=world
RUN <<EOF
echo "hello $WHO" > /plain
echo second >> /plain
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /shebang
EOF
RUN <<-EOT cat > /chomped
\tindented $WHO
\tEOT
RUN cat <<'EOF' > /quoted
not $WHO
EOF
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile)
    assert await b.file(image_id, "plain") == b"hello world\nsecond\n"
    assert await b.file(image_id, "shebang") == b"script /dev/pipes/EOF\n"
    assert await b.file(image_id, "chomped") == b"indented world\n"
    assert await b.file(image_id, "quoted") == b"not $WHO\n"
    assert "pipes" not in str(await b.tree(image_id))


async def test_copy_heredocs(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox}
ARG NAME=app
COPY <<EOF /etc/$NAME.conf
name=$NAME
EOF
COPY <<"A" <<B /multi/
raw $NAME
A
expanded $NAME
B
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile)
    assert await b.file(image_id, "etc/app.conf") == b"name=app\n"
    assert await b.file(image_id, "multi/A") == b"raw $NAME\n"
    assert await b.file(image_id, "multi/B") == b"expanded app\n"
    tree = await b.tree(image_id)
    assert tree["etc/app.conf"].mode == 0o644


# -- COPY --link, --parents, --exclude -----------------------------------------------------
async def test_copy_link_layer_is_independent_of_parent(
    b: Builder, busybox: str, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("alpha\n")
    plain = await b.build(ctx, f"FROM {busybox}\nCOPY --link a.txt /opt/x/\n")
    other_base = f"FROM {busybox}\nRUN mkdir -p /opt/x && chmod 700 /opt/x\n"
    linked = await b.build(ctx, other_base + "COPY --link a.txt /opt/x/\n")
    unlinked = await b.build(ctx, other_base + "COPY a.txt /opt/x/\n")
    last = [(await b.config(i))["rootfs"]["diff_ids"][-1] for i in (plain, linked, unlinked)]
    assert last[0] == last[1] != last[2]  # the same layer whatever the parent holds
    assert (await b.tree(linked))["opt/x"].mode == 0o755  # the layer's own directory
    assert (await b.tree(unlinked))["opt/x"].mode == 0o700
    assert await b.file(linked, "opt/x/a.txt") == b"alpha\n"


async def test_copy_parents_and_exclude(b: Builder, busybox: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    for rel in ("x/a.txt", "x/a.md", "y/deep/b.txt", "y/deep/skip.log", "top.txt"):
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(rel + "\n")
    dockerfile = f"""FROM {busybox}
COPY --parents x/a.txt y/./deep/b.txt /p/
COPY --parents */*.md /globbed/
COPY --exclude=**/*.log --exclude=x y /ex/
COPY --exclude=**/*.md --exclude=y . /all/
"""
    image_id = await b.build(ctx, dockerfile)
    tree = await b.tree(image_id)

    def under(prefix: str) -> set[str]:
        return {p for p, e in tree.items() if p.startswith(prefix) and e.type == "file"}

    assert under("p/") == {"p/x/a.txt", "p/deep/b.txt"}
    assert under("globbed/") == {"globbed/x/a.md"}
    assert under("ex/") == {"ex/deep/b.txt"}
    assert under("all/") == {"all/Dockerfile", "all/top.txt", "all/x/a.txt"}


# -- ADD from URLs -------------------------------------------------------------------------
@pytest.fixture
async def http_files() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A local aiohttp server on 127.0.0.1 serving a few files (with Last-Modified)."""
    files = {"/tool.sh": b"#!/bin/sh\necho tool\n", "/data.tar": _tar_bytes()}

    async def handler(request: web.Request) -> web.Response:
        body = files.get(request.path)
        if body is None:
            return web.Response(status=404)
        headers = {"Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"}
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", files
    finally:
        await runner.cleanup()


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inner.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"in\n"))
    return buf.getvalue()


async def test_add_url_with_checksum(
    b: Builder, busybox: str, tmp_path: Path, http_files: tuple[str, dict[str, bytes]]
) -> None:
    base, files = http_files
    good = "sha256:" + hashlib.sha256(files["/tool.sh"]).hexdigest()
    dockerfile = f"""FROM {busybox}
ADD --checksum={good} {base}/tool.sh /opt/
ADD {base}/data.tar /opt/data.tar
ADD {base}/tool.sh /opt/renamed
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile)
    tree = await b.tree(image_id)
    assert await b.file(image_id, "opt/tool.sh") == files["/tool.sh"]
    assert tree["opt/tool.sh"].mode == 0o600
    assert await b.file(image_id, "opt/data.tar") == files["/data.tar"]  # never extracted
    assert "opt/renamed" in tree
    cfg = await b.config(image_id)
    chain = chain_ids([Digest.parse(d) for d in cfg["rootfs"]["diff_ids"]])[-1]
    async with merged_view(b.engine.snapshots, chain) as root:
        assert int((root / "opt/tool.sh").stat().st_mtime) == 1445412480  # Last-Modified

    bad = "sha256:" + "0" * 64
    with pytest.raises(BuildError, match="digest mismatch"):
        await b.build(tmp_path / "ctx2", f"FROM {busybox}\nADD --checksum={bad} {base}/tool.sh /\n")
    with pytest.raises(BuildError, match="404"):
        await b.build(tmp_path / "ctx3", f"FROM {busybox}\nADD {base}/missing /\n")
    assert not list((b.root / "build-tmp").iterdir())  # nothing half-written left


async def test_add_git_is_refused(b: Builder, busybox: str, tmp_path: Path) -> None:
    for src in ("https://github.com/moby/moby.git", "git@github.com:moby/moby.git"):
        with pytest.raises(InvalidArgument, match=r"git repository .* is not supported"):
            await b.build(tmp_path / "ctx", f"FROM {busybox}\nADD {src} /src/\n")


# -- concurrent stages ---------------------------------------------------------------------
async def test_independent_stages_run_concurrently(
    b: Builder, busybox: str, tmp_path: Path
) -> None:
    # each stage leaves a marker in a shared cache mount, then waits (bounded) for the
    # other's: both succeed only when the two RUN steps overlap in time
    wait = (
        "touch /meet/{me} && i=0; while [ ! -e /meet/{other} ]; do "
        'i=$((i+1)); [ "$i" -gt 600 ] && exit 9; sleep 0.1; done; echo {me} > /done'
    )
    mount = "--mount=type=cache,id=feat-meet-{tag},target=/meet"
    tag = tmp_path.name
    dockerfile = f"""FROM {busybox} AS left
RUN {mount.format(tag=tag)} {wait.format(me="left", other="right")}
FROM {busybox} AS right
RUN {mount.format(tag=tag)} {wait.format(me="right", other="left")}
FROM {busybox}
COPY --from=left /done /left
COPY --from=right /done /right
"""
    image_id = await b.build(tmp_path / "ctx", dockerfile)
    assert await b.file(image_id, "left") == b"left\n"
    assert await b.file(image_id, "right") == b"right\n"
    # the output still reads stage after stage, in step order
    steps = [line for line in b.lines if line.startswith("Step ")]
    assert [s.split(" :")[0] for s in steps] == [f"Step {n}/7" for n in range(1, 8)]
    out = b.output
    assert out.index("Step 2/7") < out.index("Step 3/7") < out.index("Step 5/7")


async def test_failed_stage_stops_the_build(b: Builder, busybox: str, tmp_path: Path) -> None:
    dockerfile = f"""FROM {busybox} AS bad
RUN exit 4
FROM {busybox} AS slow
RUN sleep 30
FROM {busybox}
COPY --from=bad / /bad
COPY --from=slow / /slow
"""
    with pytest.raises(BuildError) as info:
        await b.build(tmp_path / "ctx", dockerfile)
    assert info.value.exit_code == 4
    assert await b.engine.containers.list_containers(all=True) == []


async def test_add_unpack_flag(
    b: Builder, busybox: str, tmp_path: Path, http_files: tuple[str, dict[str, bytes]]
) -> None:
    base, files = http_files
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "local.tar").write_bytes(files["/data.tar"])
    dockerfile = f"""FROM {busybox}
ADD --unpack=true {base}/data.tar /url/
ADD --unpack=false local.tar /kept/
ADD local.tar /auto/
"""
    image_id = await b.build(ctx, dockerfile)
    assert await b.file(image_id, "url/inner.txt") == b"in\n"
    assert await b.file(image_id, "kept/local.tar") == files["/data.tar"]
    assert await b.file(image_id, "auto/inner.txt") == b"in\n"
