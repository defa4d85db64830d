"""The pullers ``bench/pull`` compares, each pulling into a fresh destination per trial.

- ``portside``: ``portside pull --root <fresh> --insecure-registry HOST REF``
- ``docker``: ``docker pull`` against a private dockerd (tests/fixtures/dockerd), with every
  image removed and pruned before each trial so each pull is cold
- ``podman``: ``podman --root <fresh> --runroot <fresh> pull --tls-verify=false`` when it works
- ``skopeo``: ``skopeo copy docker://REF dir:<fresh>``, the download-only floor
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pull_lib.measure import Trial, run_trial
from tests.fixtures.procs import unmount_under


class Puller:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work

    def unavailable(self) -> str | None:
        """Why this puller cannot run here, or None."""
        return None

    def fresh_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.work))

    def cleanup(self, path: Path) -> None:
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)

    def pull(self, ref: str, host: str) -> Trial:
        raise NotImplementedError

    def close(self) -> None:
        pass


def portside_command() -> list[str]:
    """The ``portside`` entry point next to this Python, else ``python -m tui.main``."""
    script = Path(sys.executable).parent / "portside"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "tui.main"]


class PortsidePuller(Puller):
    name = "portside"

    def __init__(self, work: Path, command: list[str] | None = None) -> None:
        super().__init__(work)
        self.command = command or portside_command()
        self.env_dir = Path(tempfile.mkdtemp(prefix="portside-env-", dir=work))
        self.env = dict(os.environ)
        self.env.pop("PORTSIDE_HOST", None)
        self.env["PORTSIDE_CONFIG"] = str(self.env_dir / "config.toml")
        self.env["DOCKER_CONFIG"] = str(self.env_dir / "docker")

    def unavailable(self) -> str | None:
        result = subprocess.run(
            [*self.command, "pull", "--help"], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            return f"`portside pull --help` failed: {result.stderr.strip()[-200:]}"
        return None

    def pull(self, ref: str, host: str) -> Trial:
        root = self.fresh_dir()
        try:
            argv = [*self.command, "pull", "--quiet", "--root", str(root)]
            argv += ["--insecure-registry", host, ref]
            return run_trial(argv, env=self.env)
        finally:
            self.cleanup(root)


class DockerPuller(Puller):
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

    def pull(self, ref: str, host: str) -> Trial:
        assert self.daemon is not None
        self.daemon.remove_all()
        trial = run_trial([self.daemon.cli, "pull", "-q", ref], env=self.daemon.env)
        self.daemon.remove_all()
        return trial

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


class PodmanPuller(Puller):
    name = "podman"

    def unavailable(self) -> str | None:
        if shutil.which("podman") is None:
            return "podman is not installed (apt-get install podman)"
        return None

    def pull(self, ref: str, host: str) -> Trial:
        root = self.fresh_dir()
        try:
            argv = [
                "podman",
                "--root",
                str(root / "root"),
                "--runroot",
                str(root / "run"),
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "pull",
                "--quiet",
                "--tls-verify=false",
                ref,
            ]
            return run_trial(argv)
        finally:
            self.cleanup(root)


class SkopeoPuller(Puller):
    name = "skopeo"

    def unavailable(self) -> str | None:
        if shutil.which("skopeo") is None:
            return "skopeo is not installed (apt-get install skopeo)"
        return None

    def pull(self, ref: str, host: str) -> Trial:
        dest = self.fresh_dir()
        try:
            argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"]
            argv += [f"docker://{ref}", f"dir:{dest / 'image'}"]
            return run_trial(argv)
        finally:
            self.cleanup(dest)


PULLERS: dict[str, type[Puller]] = {
    "portside": PortsidePuller,
    "docker": DockerPuller,
    "podman": PodmanPuller,
    "skopeo": SkopeoPuller,
}
