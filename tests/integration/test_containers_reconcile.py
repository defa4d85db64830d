"""Containers never depend on the engine: an engine process holding 20 running containers
is SIGKILLed, a new engine on the same root reconciles them: still running, attachable,
logs continuous; a container that exited meanwhile reports its real exit code, ``--rm``
ones are removed and ``--restart always`` ones are started again."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.containers import open_harness, prepare_root

N_RUNNING = 20
TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"

_ENGINE_SCRIPT = r"""
import asyncio, json, sys
from pathlib import Path
from tests.fixtures.containers import open_harness

async def main(root, image, runtime, n, ticker):
    async with open_harness(Path(root), runtime, cleanup=False) as h:
        ids = {"running": []}
        for i in range(n):
            ids["running"].append(await h.run(image, ["sh", "-c", ticker], name=f"tick{i}"))
        ids["exits"] = await h.run(image, ["sh", "-c", "sleep 3; exit 7"])
        ids["rm"] = await h.run(image, ["sh", "-c", "sleep 3; exit 0"],
                                HostConfig={"AutoRemove": True})
        ids["always"] = await h.run(image, ["sh", "-c", "sleep 3; exit 3"],
                                    HostConfig={"RestartPolicy": {"Name": "always"}})
        print("READY " + json.dumps(ids), flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4]), sys.argv[5]))
"""


@pytest.fixture(scope="module")
def rec_root(tmp_path_factory: pytest.TempPathFactory, pushed_images: dict[str, str]) -> Path:
    root = tmp_path_factory.mktemp("reconcile") / "root"
    prepare_root(root, [pushed_images["test/busybox:1"]])
    return root


def _ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"tick (\d+)", text)]


@pytest.mark.parametrize("runtime", ["crun", "runc"])
async def test_engine_sigkill_and_reconcile(
    rec_root: Path, pushed_images: dict[str, str], runtime: str
) -> None:
    image = pushed_images["test/busybox:1"]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(  # noqa: ASYNC220 - a plain child we SIGKILL; read in a thread
        [
            sys.executable,
            "-c",
            _ENGINE_SCRIPT,
            str(rec_root),
            image,
            runtime,
            str(N_RUNNING),
            TICKER,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
        assert line.startswith(b"READY "), proc.stderr.read().decode()  # type: ignore[union-attr]
        ids = json.loads(line[6:])
        await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    # the engine is gone; its containers are not
    await asyncio.sleep(4)  # "exits", "rm" and "always" finish while no engine runs

    async with open_harness(rec_root, runtime) as h:
        svc = h.containers
        for cid in ids["running"]:
            info = await svc.inspect(cid)
            assert info["State"]["Status"] == "running", info["State"]
            assert Path(f"/proc/{info['State']['Pid']}").exists()
        exited = await svc.inspect(ids["exits"])
        assert exited["State"]["Status"] == "exited"
        assert exited["State"]["ExitCode"] == 7
        # --rm: removed by the reconciling engine
        removed = svc.waiter(ids["rm"], "removed") if ids["rm"] in svc._records else None
        if removed is not None:
            await asyncio.wait_for(removed, 30)
        assert await svc.list_containers(all=True, filters={"id": [ids["rm"]]}) == []
        # --restart always: started again
        for _ in range(100):
            always = await svc.inspect(ids["always"])
            if always["State"]["Running"]:
                break
            await asyncio.sleep(0.1)
        assert always["State"]["Running"] and always["RestartCount"] >= 1

        # attachable: a new attach sees new output
        target = ids["running"][0]
        att = await svc.attach(target, stdout=True, stderr=True)
        chunk = b""
        async for _, data in att.output():
            chunk += data
            if b"tick" in chunk:
                break
        att.close()
        assert b"tick" in chunk
        # logs continuous across the engine's death: every tick, in order, no gap
        time.sleep(0.5)
        ticks = _ticks(await h.output(target))
        assert ticks == list(range(len(ticks))) and len(ticks) > 20

        for cid in ids["running"]:
            await svc.remove(cid, force=True)
        await svc.remove(ids["always"], force=True)
        await svc.remove(ids["exits"])
    leftovers = subprocess.run(
        ["pgrep", "-f", f"monitor.py {rec_root}"], capture_output=True, text=True
    ).stdout
    assert leftovers == ""
