"""Wiring of one engine instance: store, snapshots, registry client and services.

``Engine.open(config)`` builds everything for a root directory; the API server, the
embedded engine and tests all start here. Nothing in this module speaks HTTP.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import uuid
from pathlib import Path
from typing import Any

from engine.build.service import BuildService
from engine.config import EngineConfig
from engine.containers import ContainerService
from engine.events import EventBus
from engine.images import ImageService
from engine.network.networks import NetworkService
from engine.pull import Puller
from engine.registry.browse import RegistryBrowser
from engine.registry.client import RegistryClient
from engine.registry.push import Pusher
from engine.scan.scanner import Scanner
from engine.store.content import ContentStore
from engine.store.gc import GarbageCollector
from engine.store.metadata import Metadata
from engine.store.snapshots import Snapshotter, open_snapshotter
from engine.volumes import VolumeService

VERSION = "0.1.0"


def _engine_id(root: Path) -> str:
    """A stable id for this root (docker's ``ID`` in /info).

    Several processes may open a new root at once: each writes a candidate to its own temp
    file and hard-links it into place, which only the first can do; the others read it.
    """
    path = root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    tmp = root / f".engine-id.{os.getpid()}"
    tmp.write_text(str(uuid.uuid4()).upper() + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


class Engine:
    """Everything one engine root needs, opened and closed together."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        content: ContentStore,
        metadata: Metadata,
        snapshots: Snapshotter,
        registry: RegistryClient,
        gc: GarbageCollector,
        images: ImageService,
        events: EventBus,
        pusher: Pusher,
        volumes: VolumeService,
        containers: ContainerService,
    ) -> None:
        self.config = config
        self.content = content
        self.metadata = metadata
        self.snapshots = snapshots
        self.registry = registry
        self.gc = gc
        self.images = images
        self.events = events
        self.pusher = pusher
        self.volumes = volumes
        self.containers = containers
        self.builds = BuildService(config.root, images, containers)
        self.networks = containers.networks
        self.browser = RegistryBrowser(registry)
        self.scanner = Scanner(images, content)
        self.id = _engine_id(config.root)

    @classmethod
    async def open(
        cls,
        config: EngineConfig,
        *,
        networks: NetworkService | None = None,
        **container_options: Any,
    ) -> Engine:
        """Open every service of ``config.root``; ``container_options`` go to
        ``ContainerService.open`` (tests use them to force runtime probing choices)."""
        root = config.root
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True, mode=0o711)
        content = await asyncio.to_thread(ContentStore, root / "content")
        metadata = await asyncio.to_thread(Metadata, root / "metadata.db")
        snapshots = await asyncio.to_thread(open_snapshotter, root, config.snapshotter)
        registry = RegistryClient(config)
        gc = GarbageCollector(root, content, metadata, snapshots)
        events = EventBus()
        puller = Puller(
            registry=registry,
            content=content,
            metadata=metadata,
            snapshots=snapshots,
            gc=gc,
            max_downloads=config.max_concurrent_downloads,
        )
        images = ImageService(
            content=content,
            metadata=metadata,
            snapshots=snapshots,
            puller=puller,
            gc=gc,
            events=events,
        )
        pusher = Pusher(
            registry=registry, content=content, metadata=metadata, state_dir=root / "push-uploads"
        )
        volumes = VolumeService(root)
        networks = networks if networks is not None else NetworkService.for_config(config)
        containers = await ContainerService.open(
            config=config,
            images=images,
            snapshots=snapshots,
            events=events,
            volumes=volumes,
            networks=networks,
            **container_options,
        )
        return cls(
            config,
            pusher=pusher,
            volumes=volumes,
            containers=containers,
            content=content,
            metadata=metadata,
            snapshots=snapshots,
            registry=registry,
            gc=gc,
            images=images,
            events=events,
        )

    async def close(self) -> None:
        """Stop the services; containers keep running under their monitors."""
        await self.builds.close()
        await self.containers.close()
        await self.networks.close()
        await self.registry.close()
        await self.snapshots.close()
        await asyncio.to_thread(self.metadata.close)

    async def info(self) -> dict[str, Any]:
        """The fields of docker's ``/info`` that this engine knows."""
        images = await self.metadata.run(self.metadata.list_images)
        uname = platform.uname()
        return {
            "ID": self.id,
            "Images": len(images),
            "Driver": self.snapshots.driver,
            "DriverStatus": [["Snapshotter", self.snapshots.driver]],
            "DockerRootDir": str(self.config.root),
            "OperatingSystem": _os_name(),
            "OSType": "linux",
            "Architecture": uname.machine,
            "KernelVersion": uname.release,
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "Name": socket.gethostname(),
            "ServerVersion": VERSION,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "InsecureRegistryCIDRs": [r for r in self.config.insecure_registries if "/" in r],
                "IndexConfigs": {},
                "Mirrors": list(self.config.registry_mirrors),
            },
            **self.containers.info(),
        }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
