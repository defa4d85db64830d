"""Acceptance: the Dockerfile corpus in ``tests/fixtures/dockerfiles`` builds the same with
portside as with dockerd's legacy builder (``DOCKER_BUILDKIT=0 docker build``).

Every case (one directory: a Dockerfile, its context and an optional ``case.json``) is built
once per engine in one module-scoped pass (docker builds run in threads while portside builds
in one engine), then each (case, target) is compared: the image config fields, the top-level
``author``, the history (``created_by``, ``empty_layer``), the layer count and the whole
exported file tree (names, types, modes, owners, sizes, content hashes, link targets; mtimes
are not compared). Docker must build every case, except one marked ``docker_refuses``: a
BuildKit-only feature portside supports, checked on portside's side alone. Differences
found and not fixed yet are listed in ``KNOWN`` with where the fix belongs: they are
tolerated, anything else fails, and an entry that stops matching asks (by a warning) to be
removed.

``case.json`` keys: ``build_args`` (``BASE``, the busybox test image, is always passed),
``targets`` (list, ``null`` for the last stage), ``docker_refuses`` (a piece of docker's
error) with ``portside_modes`` (path: octal mode expected in portside's image), ``context``
(a subdirectory used as the context), ``dockerfile`` (path relative to the case directory,
maybe outside the context), and preparation git cannot carry: ``modes`` (path: octal),
``symlinks`` (path: target), ``tars`` (archive name: directory to pack; compression from the
suffix). ``@BASE@`` in a Dockerfile becomes the base image's reference (``COPY --from``
does not expand ARGs in the legacy builder).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from engine.build.context import BuildContext
from engine.digest import Digest, chain_ids
from engine.engine import Engine
from engine.errors import PortsideError
from engine.store.snapshots import merged_view
from tests.fixtures.engine import engine_config
from tests.fixtures.trees import (
    Tree,
    diff_trees,
    tree_of_dir,
    tree_of_tar,
    without_docker_additions,
    without_xattrs,
)
from tui.cli.build import _tar_directory

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "dockerfiles"
CONFIG_KEYS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "OnBuild",
    "Shell",
)
DOCKER_WORKERS = 3
# COPY/ADD history names the sources by a content fingerprint: docker's is the tarsum of the
# CLI's tar headers and data, portside's its own content hash; only their shape is compared.
_FINGERPRINT = re.compile(r"(file|dir|multi):[0-9a-f]{64}")  # after --chown=X too

# Differences found by this corpus and not fixed yet: (case names or "*", regex on a problem
# line, where the fix belongs). Anything else that differs fails the test.
KNOWN: list[tuple[str, str, str]] = [
    (
        "dockerfile-outside",
        r"^tree missing  ctx/\.dockerignore: file",
        "tui/cli/build.py: deliberate; the docker CLI keeps .dockerignore (random name added)",
    ),
]
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Case:
    name: str
    target: str | None
    spec: dict[str, Any] = field(hash=False, compare=False)

    @property
    def id(self) -> str:
        return self.name if self.target is None else f"{self.name}@{self.target}"


@dataclass
class Result:
    """One engine's outcome for one case: an image (config + tree) or an error message."""

    config: dict[str, Any] | None = None
    tree: Tree | None = None
    error: str | None = None


def _cases() -> list[Case]:
    out = []
    for directory in sorted(p for p in CASES.iterdir() if p.is_dir()):
        spec_file = directory / "case.json"
        spec = json.loads(spec_file.read_text()) if spec_file.is_file() else {}
        for target in spec.get("targets", [None]):
            out.append(Case(directory.name, target, spec))
    return out


ALL_CASES = _cases()


# -- preparation -----------------------------------------------------------------------------


def _prepare(source: Path, dest: Path, spec: dict[str, Any], base: str) -> None:
    """Copy a case with fixed modes (0644 files, 0755 dirs) and what git cannot carry."""
    shutil.copytree(source, dest, symlinks=True)
    (dest / "case.json").unlink(missing_ok=True)
    for dirpath, _dirs, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644)
    for dockerfile in dest.rglob("*Dockerfile"):  # @BASE@: where no ARG can go (COPY --from)
        dockerfile.write_text(dockerfile.read_text().replace("@BASE@", base))
    for rel, target in spec.get("symlinks", {}).items():
        (dest / rel).symlink_to(target)
    for rel, mode in spec.get("modes", {}).items():
        os.chmod(dest / rel, int(mode, 8))
    for rel, archive_dir in spec.get("tars", {}).items():
        _pack(dest / archive_dir, dest / rel)


def _pack(base: Path, archive: Path) -> None:
    """``base``'s contents as a tar (compressed by ``archive``'s suffix), owned by root."""
    mode = {"gz": "w:gz", "bz2": "w:bz2", "xz": "w:xz"}.get(archive.name.rsplit(".", 1)[-1], "w")
    with tarfile.open(archive, mode) as tar:
        for entry in sorted(base.rglob("*")):
            info = tar.gettarinfo(entry, entry.relative_to(base).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 1_700_000_000
            if info.isreg():
                with entry.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def _paths(prepared: Path, spec: dict[str, Any]) -> tuple[Path, Path | None]:
    """(context directory, Dockerfile path or None for the default)."""
    context = prepared / spec.get("context", ".")
    dockerfile = spec.get("dockerfile")
    return context, (prepared / dockerfile if dockerfile else None)


def _build_args(spec: dict[str, Any], base: str) -> dict[str, str]:
    return {"BASE": base, **spec.get("build_args", {})}


# -- docker ----------------------------------------------------------------------------------


def _docker_build(dockerd: Any, case: Case, prepared: Path, base: str) -> Result:
    env = {**dockerd.env, "DOCKER_BUILDKIT": "0"}

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [dockerd.cli, *args], env=env, capture_output=True, check=False, timeout=300
        )

    context, dockerfile = _paths(prepared, case.spec)
    tag = f"portside-corpus:{uuid.uuid4().hex[:12]}"
    argv = ["build", "-q", "-t", tag]
    argv += [f"--build-arg={k}={v}" for k, v in _build_args(case.spec, base).items()]
    if case.target:
        argv += ["--target", case.target]
    if dockerfile is not None:
        argv += ["-f", str(dockerfile)]
    built = run(*argv, str(context))
    if built.returncode != 0:
        return Result(error=built.stderr.decode(errors="replace").strip())
    cid = ""
    try:
        saved = run("save", tag)
        saved.check_returncode()
        with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        created = run("create", tag, "/nothing")
        created.check_returncode()
        cid = created.stdout.decode().strip()
        exported = run("export", cid)
        exported.check_returncode()
        tree = tree_of_tar(io.BytesIO(exported.stdout))
    finally:
        if cid:
            run("rm", "-f", cid)
        run("rmi", "-f", tag)
    return Result(config=config, tree=without_xattrs(without_docker_additions(tree)))


# -- portside --------------------------------------------------------------------------------


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, _CHUNK):
            yield chunk


async def _portside_build(eng: Engine, case: Case, prepared: Path, base: str) -> Result:
    """Send the context as ``portside build`` (and the docker CLI) tars it, then build."""
    context, dockerfile = _paths(prepared, case.spec)
    tar_path = prepared.with_name(prepared.name + ".tar")
    with tar_path.open("wb") as out:
        name = await asyncio.to_thread(
            _tar_directory, context, str(dockerfile) if dockerfile else None, out
        )
    try:
        async with await BuildContext.from_tar(_file_chunks(tar_path), name) as ctx:
            image_id = await eng.builds.build(
                ctx,
                dockerfile=name,
                build_args=_build_args(case.spec, base),
                target=case.target,
            )
    except PortsideError as err:
        return Result(error=err.message)
    finally:
        tar_path.unlink()
    config = await eng.images.config(image_id)
    diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
    tree: Tree = {}
    if diff_ids:
        async with merged_view(eng.snapshots, chain_ids(diff_ids)[-1]) as root:
            tree = await asyncio.to_thread(tree_of_dir, root)
    return Result(config=config, tree=without_xattrs(without_docker_additions(tree)))


async def _portside_all(root: Path, prepared: dict[Case, Path], base: str) -> dict[Case, Result]:
    eng = await Engine.open(engine_config(root))
    try:
        return {
            case: await _portside_build(eng, case, path, base) for case, path in prepared.items()
        }
    finally:
        await eng.close()


# -- the one pass ----------------------------------------------------------------------------


@dataclass
class Corpus:
    docker: dict[Case, Result]
    portside: dict[Case, Result]


@pytest.fixture(scope="module")
def corpus(
    dockerd: Any, pushed_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    base = pushed_images["test/busybox:1"]
    work = tmp_path_factory.mktemp("corpus")
    prepared: dict[Case, Path] = {}
    for i, case in enumerate(ALL_CASES):
        dest = work / f"{i:02d}-{case.name}"
        _prepare(CASES / case.name, dest, case.spec, base)
        prepared[case] = dest
    with concurrent.futures.ThreadPoolExecutor(DOCKER_WORKERS) as pool:
        futures = {
            case: pool.submit(_docker_build, dockerd, case, path, base)
            for case, path in prepared.items()
        }
        ours = asyncio.run(_portside_all(work / "root", prepared, base))
        theirs = {case: future.result() for case, future in futures.items()}
    yield Corpus(theirs, ours)
    shutil.rmtree(work, ignore_errors=True)


def _history(config: dict[str, Any]) -> list[tuple[bool, str]]:
    """(empty_layer, created_by) per entry, COPY/ADD content fingerprints masked (see KNOWN)."""
    return [
        (bool(h.get("empty_layer")), _FINGERPRINT.sub(r"\1:<hash>", h.get("created_by", "")))
        for h in config["history"]
    ]


def _problems(theirs: Result, ours: Result, case: Case) -> list[str]:
    """Every difference between docker's image and portside's, one line each."""
    assert ours.config is not None and theirs.config is not None
    assert ours.tree is not None and theirs.tree is not None
    problems = []
    for key in CONFIG_KEYS:
        want, got = theirs.config["config"].get(key), ours.config["config"].get(key)
        if want != got:
            problems.append(f"config {key}: docker {want!r} | portside {got!r}")
    want_author, got_author = theirs.config.get("author"), ours.config.get("author")
    if want_author != got_author:
        problems.append(f"author: docker {want_author!r} | portside {got_author!r}")
    want_h, got_h = _history(theirs.config), _history(ours.config)
    for i in range(max(len(want_h), len(got_h))):
        w = want_h[i] if i < len(want_h) else None
        g = got_h[i] if i < len(got_h) else None
        if w != g:
            problems.append(f"history[{i}]: docker {w!r} | portside {g!r}")
    n_want = len(theirs.config["rootfs"]["diff_ids"])
    n_got = len(ours.config["rootfs"]["diff_ids"])
    if n_want != n_got:
        problems.append(f"layers: docker {n_want} | portside {n_got}")
    volatile = set(case.spec.get("volatile", []))
    want_tree = {k: replace(v, sha256=None) if k in volatile else v for k, v in theirs.tree.items()}
    got_tree = {k: replace(v, sha256=None) if k in volatile else v for k, v in ours.tree.items()}
    problems += [f"tree {line}" for line in diff_trees(want_tree, got_tree)]
    return problems


def _applies(names: str, case: Case) -> bool:
    return names == "*" or case.name in names.split()


def _known(case: Case, line: str) -> bool:
    return any(_applies(n, case) and re.search(p, line) for n, p, _ in KNOWN)


def _warn_stale(case: Case, problems: list[str]) -> None:
    """A KNOWN entry that no longer matches anything was fixed: say so, to prune the list."""
    for names, pattern, where in KNOWN:
        if case.name in names.split() and not any(re.search(pattern, p) for p in problems):
            warnings.warn(f"{case.id}: fixed, remove from KNOWN: {where}", stacklevel=2)


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_corpus_case_builds_like_docker(corpus: Corpus, case: Case) -> None:
    theirs, ours = corpus.docker[case], corpus.portside[case]
    refused = case.spec.get("docker_refuses")
    if refused is not None:
        # a BuildKit feature the legacy builder refuses and portside supports: check it
        assert theirs.error is not None and refused in theirs.error, theirs.error
        assert ours.error is None, f"portside failed: {ours.error}"
        assert ours.tree is not None
        for path, mode in case.spec.get("portside_modes", {}).items():
            assert ours.tree[path].mode == int(mode, 8), (path, oct(ours.tree[path].mode))
        return
    assert theirs.error is None, f"docker failed (fix the case): {theirs.error}"
    assert ours.error is None, f"portside failed where docker built: {ours.error}"
    problems = _problems(theirs, ours, case)
    unknown = [line for line in problems if not _known(case, line)]
    assert not unknown, "\n".join(unknown)
    _warn_stale(case, problems)
