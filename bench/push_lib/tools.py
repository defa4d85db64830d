"""The pushers ``bench/push`` compares; each trial pushes to a fresh, empty registry.

- ``portside``: the engine's Pusher (``push_one.py``) from an engine root that pulled the
  image once beforehand (stored compressed blobs are sent as they are);
- ``docker``: ``docker push`` from a private dockerd that pulled the image once (dockerd
  20.10 keeps no compressed layers, so it compresses while pushing, as it always does);
- ``skopeo``: ``skopeo copy docker://SOURCE docker://DEST``, registry to registry: the
  transfer floor.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pull_lib.measure import Trial, run_trial

PUSH_ONE = Path(__file__).resolve().parent / "push_one.py"


class Pusher:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work

    def unavailable(self) -> str | None:
        return None

    def prepare(self, source: str) -> None:
        """Get ``source`` (a reference in the source registry) locally, untimed."""

    def push(self, source: str, dest: str) -> Trial:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PortsidePusher(Pusher):
    name = "portside"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.root = Path(tempfile.mkdtemp(prefix="portside-root-", dir=work))

    def prepare(self, source: str) -> None:
        argv = [sys.executable, str(PUSH_ONE), "pull", str(self.root), source]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=1800)

    def push(self, source: str, dest: str) -> Trial:
        return run_trial([sys.executable, str(PUSH_ONE), "push", str(self.root), source, dest])

    def close(self) -> None:
        from tests.fixtures.procs import unmount_under

        unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


class DockerPusher(Pusher):
    name = "docker"

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self._ctx = None
        self.daemon = None

    def unavailable(self) -> str | None:
        from tests.fixtures.dockerd import start_dockerd
        from tests.fixtures.procs import ServiceError

        try:
            self._ctx = start_dockerd()
            self.daemon = self._ctx.__enter__()
        except ServiceError as err:
            self._ctx = None
            return f"dockerd did not start: {str(err).splitlines()[0]}"
        return None

    def prepare(self, source: str) -> None:
        assert self.daemon is not None
        self.daemon.docker("pull", "-q", source, timeout=1800)

    def push(self, source: str, dest: str) -> Trial:
        assert self.daemon is not None
        self.daemon.docker("tag", source, dest)
        try:
            return run_trial([self.daemon.cli, "push", "-q", dest], env=self.daemon.env)
        finally:
            self.daemon.docker("rmi", dest, check=False)

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


class SkopeoPusher(Pusher):
    name = "skopeo"

    def unavailable(self) -> str | None:
        if shutil.which("skopeo") is None:
            return "skopeo is not installed (apt-get install skopeo)"
        return None

    def push(self, source: str, dest: str) -> Trial:
        argv = ["skopeo", "--insecure-policy", "copy", "--quiet"]
        argv += ["--src-tls-verify=false", "--dest-tls-verify=false"]
        return run_trial([*argv, f"docker://{source}", f"docker://{dest}"])


PUSHERS: dict[str, type[Pusher]] = {
    "portside": PortsidePusher,
    "docker": DockerPusher,
    "skopeo": SkopeoPusher,
}
