"""The dashboard's view of an engine: typed rows built from Docker Engine API answers.

``ContainerRow`` and ``ImageRow`` are immutable snapshots of one list entry
(``GET /containers/json``, ``GET /images/json``); ``EngineInfo`` is what ``GET /version``
says about the engine. Nothing here does I/O, so tests and snapshots build rows from
fixed data exactly as the engine workers build them from live answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tui.humanize import short_id

NONE_TAG = "<none>:<none>"
COMPOSE_PROJECT = "com.docker.compose.project"


class ApiEntry(Protocol):
    """A list entry from aiodocker: a dict, or a ``DockerContainer`` (``[]`` and ``in``)."""

    def __getitem__(self, key: str) -> Any: ...

    def __contains__(self, key: object) -> bool: ...


def _get(entry: ApiEntry, key: str, default: Any = None) -> Any:
    if key in entry:
        value = entry[key]
        return default if value is None else value
    return default


def format_ports(ports: Iterable[Mapping[str, Any]]) -> str:
    """Docker's PORTS column: ``0.0.0.0:8080->80/tcp, 443/tcp`` (IPv6 twins folded in)."""
    seen: set[tuple[Any, ...]] = set()
    parts: list[tuple[tuple[int, int, str], str]] = []
    for port in ports:
        private = int(port.get("PrivatePort") or 0)
        public = port.get("PublicPort")
        proto = str(port.get("Type") or "tcp")
        ip = str(port.get("IP") or "")
        if public:
            key: tuple[Any, ...] = (private, int(public), proto)
            if key in seen:
                continue  # "::" twin of a 0.0.0.0 binding
            seen.add(key)
            host = f"{ip}:" if ip and ip != "::" else ("[::]:" if ip == "::" else "")
            parts.append(((private, int(public), proto), f"{host}{public}->{private}/{proto}"))
        else:
            key = (private, 0, proto)
            if key in seen:
                continue
            seen.add(key)
            parts.append(((private, 0, proto), f"{private}/{proto}"))
    parts.sort(key=lambda item: item[0])
    return ", ".join(text for _, text in parts)


@dataclass(frozen=True, slots=True)
class ContainerRow:
    """One container as ``GET /containers/json?all=1`` lists it."""

    id: str
    name: str
    image: str
    image_id: str
    state: str
    status: str
    command: str
    created: float
    ports: str
    project: str = ""  # the compose project label, if any

    @classmethod
    def from_api(cls, entry: ApiEntry) -> ContainerRow:
        names = _get(entry, "Names", [])
        name = names[0].lstrip("/") if names else short_id(str(_get(entry, "Id", "")))
        return cls(
            id=str(_get(entry, "Id", "")),
            name=name,
            image=str(_get(entry, "Image", "")),
            image_id=str(_get(entry, "ImageID", "")),
            state=str(_get(entry, "State", "unknown")).lower(),
            status=str(_get(entry, "Status", "")),
            command=str(_get(entry, "Command", "")),
            created=float(_get(entry, "Created", 0) or 0),
            ports=format_ports(_get(entry, "Ports", [])),
            project=str((_get(entry, "Labels", {}) or {}).get(COMPOSE_PROJECT, "")),
        )

    @property
    def search_text(self) -> str:
        """What the filter-as-you-type box matches against (lower case)."""
        return " ".join(
            (
                self.name,
                self.image,
                self.state,
                self.status,
                self.command,
                self.ports,
                self.project,
                short_id(self.id),
            )
        ).lower()


@dataclass(frozen=True, slots=True)
class ImageRow:
    """One ``repository:tag`` of an image (an untagged image gets one ``<none>`` row)."""

    key: str
    id: str
    repository: str
    tag: str
    size: int
    created: float
    dangling: bool

    @property
    def reference(self) -> str:
        """``repository:tag``, or the short id for an untagged image."""
        if self.dangling:
            return short_id(self.id)
        return f"{self.repository}:{self.tag}"

    @property
    def repo_tag(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def search_text(self) -> str:
        return f"{self.repository}:{self.tag} {short_id(self.id)}".lower()


def image_rows(entry: ApiEntry) -> list[ImageRow]:
    """The rows of one ``GET /images/json`` entry: one per tag, or one ``<none>`` row."""
    image_id = str(_get(entry, "Id", ""))
    size = int(_get(entry, "Size", 0) or 0)
    created = float(_get(entry, "Created", 0) or 0)
    tags = [t for t in _get(entry, "RepoTags", []) if t and t != NONE_TAG]
    if tags:
        rows = []
        for tag in tags:
            repository, _, tagname = tag.rpartition(":")
            if not repository or "/" in tagname:  # "host:5000/repo" without a tag
                repository, tagname = tag, "<none>"
            rows.append(
                ImageRow(f"{image_id}|{tag}", image_id, repository, tagname, size, created, False)
            )
        return rows
    digests = [d for d in _get(entry, "RepoDigests", []) if d and "@" in d]
    repository = digests[0].partition("@")[0] if digests else "<none>"
    if repository == "<none>":
        return [ImageRow(f"{image_id}|", image_id, "<none>", "<none>", size, created, True)]
    # Pulled by digest and never tagged: docker lists it as "repo <none>", not dangling.
    return [
        ImageRow(f"{image_id}|{repository}", image_id, repository, "<none>", size, created, False)
    ]


# Components that are parts of an engine, not the engine: runtimes, containerd, init.
_HELPERS = frozenset({"engine", "containerd", "runc", "crun", "docker-init", "conmon"})


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Who we are talking to, from ``GET /version``."""

    name: str
    url: str
    product: str
    version: str
    api_version: str
    os: str
    arch: str

    @classmethod
    def from_version(cls, name: str, url: str, version: Mapping[str, Any]) -> EngineInfo:
        product = "Docker Engine"
        platform = version.get("Platform") or {}
        if isinstance(platform, Mapping) and platform.get("Name"):
            product = str(platform["Name"])
        for component in version.get("Components") or []:
            comp_name = str(component.get("Name") or "")
            lowered = comp_name.lower()
            if comp_name and lowered not in _HELPERS and not lowered.startswith("oci runtime"):
                product = comp_name  # e.g. "Podman Engine"
                break
        return cls(
            name=name,
            url=url,
            product=product,
            version=str(version.get("Version") or "?"),
            api_version=str(version.get("ApiVersion") or "?"),
            os=str(version.get("Os") or ""),
            arch=str(version.get("Arch") or ""),
        )


@dataclass(frozen=True, slots=True)
class EngineProblem:
    """Why the engine cannot be used right now, and what the user can do about it."""

    reason: str
    hint: str


@dataclass(frozen=True, slots=True)
class VolumeRow:
    """One volume as ``GET /volumes`` lists it."""

    name: str
    driver: str
    mountpoint: str
    created: str
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def from_api(cls, entry: Mapping[str, Any]) -> VolumeRow:
        labels = entry.get("Labels") or {}
        return cls(
            name=str(entry.get("Name") or ""),
            driver=str(entry.get("Driver") or ""),
            mountpoint=str(entry.get("Mountpoint") or ""),
            created=str(entry.get("CreatedAt") or ""),
            labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        )

    @property
    def project(self) -> str:
        return dict(self.labels).get(COMPOSE_PROJECT, "")

    @property
    def search_text(self) -> str:
        return f"{self.name} {self.driver} {self.project}".lower()


@dataclass(frozen=True, slots=True)
class NetworkRow:
    """One network as ``GET /networks`` lists it."""

    id: str
    name: str
    driver: str
    scope: str
    subnet: str
    internal: bool
    created: str

    @classmethod
    def from_api(cls, entry: Mapping[str, Any]) -> NetworkRow:
        configs = (entry.get("IPAM") or {}).get("Config") or []
        subnets = ", ".join(str(c.get("Subnet")) for c in configs if c.get("Subnet"))
        return cls(
            id=str(entry.get("Id") or ""),
            name=str(entry.get("Name") or ""),
            driver=str(entry.get("Driver") or ""),
            scope=str(entry.get("Scope") or ""),
            subnet=subnets,
            internal=bool(entry.get("Internal")),
            created=str(entry.get("Created") or ""),
        )

    @property
    def builtin(self) -> bool:
        """The engine's own networks, which cannot be removed."""
        return self.name in ("bridge", "host", "none")

    @property
    def search_text(self) -> str:
        return f"{self.name} {self.driver} {self.scope} {self.subnet} {short_id(self.id)}".lower()
