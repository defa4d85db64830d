"""Keeps the dashboard in step with one engine: connect, follow ``/events``, reconcile, reconnect.

``EngineSync.run`` is the body of the app's single engine worker. It connects through the
connector it was given (an async factory returning an ``aiodocker.Docker``), subscribes to
the engine's event stream *before* listing, then refreshes only what events say changed
(one filtered list call per burst of events, never a call per container per tick) and
reconciles everything at a low rate. When the engine goes away it reports why and retries
with a bounded backoff. All results leave as typed messages through ``emit``; nothing here
touches a widget.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from textual.message import Message

from tui.messages import (
    ContainersUpdated,
    EngineConnected,
    EngineConnecting,
    EngineUnreachable,
    ImagesUpdated,
    NetworksUpdated,
    VolumesUpdated,
)
from tui.model import ContainerRow, EngineInfo, EngineProblem, NetworkRow, VolumeRow, image_rows
from tui.problems import Problem

if TYPE_CHECKING:
    import aiodocker

Connector = Callable[[], Awaitable["aiodocker.Docker"]]
Emit = Callable[[Message], object]

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
CONNECT_TIMEOUT = 10.0
COALESCE_WINDOW = 0.05  # events arriving this close together cost one refresh
TARGETED_LIMIT = 50  # above this many changed containers, list them all instead
POLL_INTERVAL_WITHOUT_EVENTS = 5.0
STREAM_MIN_LIFE = 30.0  # an event stream ending sooner than this counts as a failure

# Container actions that change nothing a list shows.
_IGNORED_CONTAINER_ACTIONS = frozenset(
    {"attach", "detach", "resize", "top", "export", "archive-path", "extract-to-dir", "copy"}
)
_IGNORED_IMAGE_ACTIONS = frozenset({"push", "save"})


class _Refresh:
    """Inbox marker: reconcile everything now."""


class _StreamEnded:
    """Inbox marker: the engine's event stream ended."""


_REFRESH = _Refresh()
_STREAM_ENDED = _StreamEnded()


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _find_os_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (current.errno or isinstance(current, ssl.SSLError)):
            return current
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, OSError):
            return os_error
        current = current.__cause__ or current.__context__
    return None


def _is_a(exc: BaseException, module: str, name: str) -> bool:
    """``isinstance(exc, module.name)`` without importing ``module``: a failure from before
    the client library was loaded (the embedded engine's start) cannot be one of its errors,
    and importing aiohttp here would stall the event loop for ~100 ms."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


def describe_failure(exc: BaseException, url: str) -> EngineProblem:
    """A one-line reason and a hint for why ``url`` cannot be used."""
    where = url.removeprefix("unix://") if url.startswith("unix://") else url
    if isinstance(exc, TimeoutError):
        return EngineProblem(
            f"{where} did not answer within {CONNECT_TIMEOUT:g} s",
            "the engine may be overloaded or hung; check its log, or restart it",
        )
    if isinstance(exc, ValueError) and not _is_a(exc, "aiodocker", "DockerError"):
        return EngineProblem(
            f"bad engine address {url!r}: {one_line(str(exc))}",
            "use unix:///path/to.sock, tcp://host:port or ssh://user@host",
        )
    if isinstance(exc, Problem):  # said in its own words (the embedded engine's start)
        return EngineProblem(
            one_line(exc.message),
            "fix what it names (the engine's config, its --root), or press E for another engine",
        )
    os_error = _find_os_error(exc)
    if isinstance(os_error, ssl.SSLError):
        return EngineProblem(
            f"TLS handshake with {where} failed: {one_line(os_error.reason or str(os_error))}",
            "check DOCKER_CERT_PATH and DOCKER_TLS_VERIFY, or the engine's certificates",
        )
    if os_error is not None:
        code = os_error.errno
        if code == errno.ENOENT:
            return EngineProblem(
                f"no engine socket at {where}",
                "start the engine (systemctl start docker, or portside serve), "
                "or choose another one with --host or DOCKER_HOST",
            )
        if code == errno.ECONNREFUSED:
            return EngineProblem(
                f"nothing is listening at {where}",
                "the engine is stopped or crashed; start it again",
            )
        if code in (errno.EACCES, errno.EPERM):
            return EngineProblem(
                f"permission denied on {where}",
                "join the docker group (or run as root), or use an engine socket you own",
            )
        reason = os_error.strerror or one_line(str(os_error))
        return EngineProblem(
            f"cannot connect to {where}: {reason}",
            "check that the engine runs and that the address is right",
        )
    if _is_a(exc, "aiodocker", "DockerError"):
        if exc.status == 900:
            return EngineProblem(
                one_line(exc.message), "check that the engine runs and that the address is right"
            )
        return EngineProblem(
            f"the engine at {where} answered HTTP {exc.status}: {one_line(exc.message)}",
            "check that the address points at a Docker-compatible engine API",
        )
    if _is_a(exc, "aiohttp", "ClientError"):
        return EngineProblem(
            f"connection to {where} failed: {one_line(str(exc)) or type(exc).__name__}",
            "check that the engine runs and that the address is right",
        )
    text = one_line(str(exc))
    return EngineProblem(
        f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
        "check that the engine runs and that the address is right",
    )


def classify_event(event: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(container id whose row changed, whether the image list changed) for one event."""
    kind = event.get("Type") or ("container" if "id" in event else "")
    action = str(event.get("Action") or event.get("status") or "")
    actor = event.get("Actor") or {}
    actor_id = str(actor.get("ID") or event.get("id") or "")
    if kind == "container":
        if action.startswith("exec_") or action.split(":")[0] in _IGNORED_CONTAINER_ACTIONS:
            return None, False
        return (actor_id or None), action == "commit"
    if kind == "image":
        return None, action not in _IGNORED_IMAGE_ACTIONS
    return None, False


def other_kind(event: Mapping[str, Any]) -> str | None:
    """ "volume" or "network" when ``event`` changes that list (mount/connect do not)."""
    kind = str(event.get("Type") or "")
    action = str(event.get("Action") or "")
    if kind == "volume" and action in ("create", "destroy", "prune"):
        return "volume"
    if kind == "network" and action in ("create", "destroy", "remove", "prune"):
        return "network"
    return None


async def list_volumes(docker: aiodocker.Docker) -> VolumesUpdated:
    """The volumes message; an engine that refuses the list gets its reason shown instead."""
    from aiodocker import DockerError

    try:
        answer = await docker.volumes.list()
    except DockerError as err:
        return VolumesUpdated((), error=one_line(err.message))
    return VolumesUpdated(VolumeRow.from_api(entry) for entry in answer.get("Volumes") or [])


async def list_networks(docker: aiodocker.Docker) -> NetworksUpdated:
    """The networks message; an engine that refuses the list gets its reason shown instead."""
    from aiodocker import DockerError

    try:
        answer = await docker.networks.list()
    except DockerError as err:
        return NetworksUpdated((), error=one_line(err.message))
    return NetworksUpdated(NetworkRow.from_api(entry) for entry in answer)


async def list_containers(
    docker: aiodocker.Docker, ids: Iterable[str] | None = None
) -> list[ContainerRow]:
    params: dict[str, Any] = {"all": True}
    if ids is not None:
        params["filters"] = {"id": sorted(ids)}
    entries = await docker.containers.list(**params)
    return [ContainerRow.from_api(entry) for entry in entries]


async def list_images(docker: aiodocker.Docker) -> list[Any]:
    rows = []
    for entry in await docker.images.list():
        rows.extend(image_rows(entry))
    return rows


class EngineSync:
    """The connection lifecycle of the dashboard (see the module docstring)."""

    def __init__(
        self,
        connector: Connector,
        emit: Emit,
        *,
        name: str,
        url: str,
        refresh_interval: float = 15.0,
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self._connector = connector
        self._emit = emit
        self.name = name
        self.url = url
        self.refresh_interval = refresh_interval
        self.retry_delays = retry_delays or DEFAULT_RETRY_DELAYS
        self.connect_timeout = connect_timeout
        self.docker: aiodocker.Docker | None = None
        self.info: EngineInfo | None = None
        self.live_events = False
        self._retry = asyncio.Event()
        self._inbox: asyncio.Queue[object] | None = None

    # -- requests from the UI ------------------------------------------------------------

    def retry_now(self) -> None:
        """Skip the rest of the current backoff wait."""
        self._retry.set()

    def request_refresh(self) -> None:
        """Reconcile everything as soon as possible (no-op while disconnected)."""
        if self._inbox is not None:
            self._inbox.put_nowait(_REFRESH)

    # -- the worker ----------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        return self.retry_delays[min(attempt, len(self.retry_delays)) - 1]

    async def _wait_retry(self, delay: float) -> None:
        self._retry.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry.wait(), delay)
        self._retry.clear()

    async def run(self) -> None:
        """Connect, follow, and reconnect until cancelled."""
        attempt = 0
        while True:
            attempt += 1
            self._emit(EngineConnecting(attempt))
            docker: aiodocker.Docker | None = None
            try:
                async with asyncio.timeout(self.connect_timeout):
                    docker = await self._connector()
                    version = await docker.version()
            except asyncio.CancelledError:
                if docker is not None:
                    await _close(docker)
                raise
            except Exception as exc:  # any failure to connect is shown to the user
                if docker is not None:
                    await _close(docker)
                delay = self._delay(attempt)
                self._emit(
                    EngineUnreachable(
                        describe_failure(exc, self.url), attempt=attempt, retry_in=delay
                    )
                )
                await self._wait_retry(delay)
                continue
            attempt = 0
            self.info = EngineInfo.from_version(self.name, self.url, version)
            self.docker = docker
            self._emit(EngineConnected(self.info))
            try:
                await self._follow(docker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine went away mid-way
                problem = describe_failure(exc, self.url)
            finally:
                self.docker = None
                self._inbox = None
                await _close(docker)
            attempt = 1
            delay = self._delay(attempt)
            self._emit(EngineUnreachable(problem, attempt=attempt, retry_in=delay))
            await self._wait_retry(delay)

    async def _follow(self, docker: aiodocker.Docker) -> NoReturn:
        """Follow one connection until the engine goes away, which raises the reason."""
        inbox: asyncio.Queue[object] = asyncio.Queue()
        self._inbox = inbox
        forwarder = self._subscribe(docker, inbox)
        try:
            await self._refresh_all(docker)
            loop = asyncio.get_running_loop()
            next_reconcile = loop.time() + self.refresh_interval
            quick_ends = 0  # event streams that ended soon after they started
            stream_started = loop.time()
            while True:
                timeout = max(0.0, next_reconcile - loop.time())
                try:
                    item = await asyncio.wait_for(inbox.get(), timeout)
                except TimeoutError:
                    item = _REFRESH
                items = [item, *await _drain(inbox, COALESCE_WINDOW)]
                if any(i is _STREAM_ENDED for i in items):
                    forwarder.cancel()
                    # The stream closed: is the engine gone, or only its event stream?
                    await docker.version()
                    if loop.time() - stream_started < STREAM_MIN_LIFE:
                        quick_ends += 1
                    else:
                        quick_ends = 0  # a long-lived stream dropped (a proxy timeout, say)
                    with contextlib.suppress(Exception):
                        await docker.events.stop()
                    if quick_ends <= 3:
                        forwarder = self._subscribe(docker, inbox)
                        stream_started = loop.time()
                    else:
                        self.live_events = False  # engine without /events: poll instead
                    await self._refresh_all(docker)
                    next_reconcile = loop.time() + self._reconcile_interval()
                    continue
                if any(i is _REFRESH for i in items):
                    await self._refresh_all(docker)
                    next_reconcile = loop.time() + self._reconcile_interval()
                    continue
                changed: set[str] = set()
                images_dirty = False
                others: set[str] = set()
                for event in items:
                    if isinstance(event, Mapping):
                        cid, images = classify_event(event)
                        if cid:
                            changed.add(cid)
                        images_dirty = images_dirty or images
                        if kind := other_kind(event):
                            others.add(kind)
                if "volume" in others:
                    self._emit(await list_volumes(docker))
                if "network" in others:
                    self._emit(await list_networks(docker))
                if changed:
                    await self._refresh_containers(docker, changed)
                if images_dirty:
                    self._emit(ImagesUpdated(await list_images(docker)))
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await forwarder

    def _reconcile_interval(self) -> float:
        if self.live_events:
            return self.refresh_interval
        return min(self.refresh_interval, POLL_INTERVAL_WITHOUT_EVENTS)

    def _subscribe(self, docker: aiodocker.Docker, inbox: asyncio.Queue[object]) -> asyncio.Task:
        subscriber = docker.events.subscribe()
        self.live_events = True

        async def forward() -> None:
            while True:
                event = await subscriber.get()
                if event is None:
                    inbox.put_nowait(_STREAM_ENDED)
                    return
                inbox.put_nowait(event)

        return asyncio.create_task(forward(), name="portside-events")

    async def _refresh_all(self, docker: aiodocker.Docker) -> None:
        containers = await list_containers(docker)
        images = await list_images(docker)
        volumes = await list_volumes(docker)
        networks = await list_networks(docker)
        self._emit(ContainersUpdated(containers, complete=True))
        self._emit(ImagesUpdated(images))
        self._emit(volumes)
        self._emit(networks)

    async def _refresh_containers(self, docker: aiodocker.Docker, ids: set[str]) -> None:
        if len(ids) > TARGETED_LIMIT:
            self._emit(ContainersUpdated(await list_containers(docker), complete=True))
            return
        rows = await list_containers(docker, ids)
        found = {row.id for row in rows}
        gone = {cid for cid in ids if not any(f.startswith(cid) for f in found)}
        self._emit(ContainersUpdated(rows, complete=False, removed=gone))


async def _drain(inbox: asyncio.Queue[object], window: float) -> list[object]:
    """Everything that arrives in the inbox within ``window`` seconds of the first item."""
    items: list[object] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            while not inbox.empty():
                items.append(inbox.get_nowait())
            return items
        try:
            items.append(await asyncio.wait_for(inbox.get(), remaining))
        except TimeoutError:
            return items


async def _close(docker: aiodocker.Docker) -> None:
    with contextlib.suppress(Exception):
        await docker.events.stop()
    with contextlib.suppress(Exception):
        await docker.close()
