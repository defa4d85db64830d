"""The registries the dashboard knows, and what it does with them (no Textual in here).

A registry is listed when the user's docker config names it (``auths``, ``credHelpers``),
when the engine's ``/info`` does (``RegistryConfig``: index configs and mirrors), or when a
local image's reference lives there. Login state comes from the stored credentials
(``tui.cli.dockerconfig``: config.json or the credential helper). Logging in verifies
through the engine's ``POST /auth`` and stores like ``docker login``; browsing uses
portside's ``/portside/v1`` endpoints (``tui.cli.registry``); pushing tags a local image and
pushes it through the Docker API. ``PushProgress`` folds a push stream into per-layer
state for the push dialog's bars.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.cli import dockerconfig
from tui.cli.dockerconfig import CredentialError, Credentials
from tui.problems import Problem
from tui.pull_progress import DOWNLOAD, LayerState
from tui.refs import split_ref
from tui.sync import one_line

if TYPE_CHECKING:
    import aiodocker

NOT_PORTSIDE = (
    "browsing registries needs a portside engine; this engine has no /portside/v1 endpoints "
    "(pull by name with p instead)"
)


class RegistryProblem(Problem):
    """A registry operation failed; the message is one line, ``status`` the HTTP status
    (a ``Problem``, so views that show engine errors show these the same way)."""

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403)


@dataclass(frozen=True, slots=True)
class RegistryRow:
    """One registry in the panel."""

    host: str
    logged_in: bool = False
    username: str = ""
    store: str = ""  # "config.json", "helper NAME" or "" when not logged in
    sources: tuple[str, ...] = ()  # "login", "helper", "engine", "mirror", "images"
    secure: bool | None = None  # the engine's view (None: the engine did not say)
    mirrors: tuple[str, ...] = ()
    images: int = 0
    problem: str = ""

    @property
    def search_text(self) -> str:
        return f"{self.host} {self.username} {' '.join(self.sources)}".lower()


@dataclass
class _Draft:
    sources: list[str] = field(default_factory=list)
    secure: bool | None = None
    mirrors: list[str] = field(default_factory=list)
    images: int = 0

    def add(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)


def _host_or_none(text: str) -> str | None:
    try:
        return dockerconfig.registry_host(text)
    except CredentialError:
        return None


def _from_config(data: Mapping[str, Any], drafts: dict[str, _Draft]) -> None:
    auths = data.get("auths")
    for key in auths if isinstance(auths, dict) else {}:
        if (host := _host_or_none(str(key))) is not None:
            drafts.setdefault(host, _Draft()).add("login")
    helpers = data.get("credHelpers")
    for key in helpers if isinstance(helpers, dict) else {}:
        if (host := _host_or_none(str(key))) is not None:
            drafts.setdefault(host, _Draft()).add("helper")


def _insecure_networks(
    config: Mapping[str, Any],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    cidrs = config.get("InsecureRegistryCIDRs")
    networks = []
    for cidr in cidrs if isinstance(cidrs, list) else []:
        try:
            networks.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            continue
    return networks


def _in_networks(host: str, networks: list[Any]) -> bool:
    """Whether ``host`` (``IP[:PORT]``, ``[IPv6]:PORT``) lies in one of ``networks``."""
    literal = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        address = ipaddress.ip_address(literal.strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in networks)


def _from_info(info: Mapping[str, Any], drafts: dict[str, _Draft]) -> None:
    config = info.get("RegistryConfig")
    if not isinstance(config, dict):
        return
    networks = _insecure_networks(config)
    index = config.get("IndexConfigs")
    for name, entry in index.items() if isinstance(index, dict) else ():
        host = _host_or_none(str(name))
        if host is None or not isinstance(entry, dict):
            continue
        draft = drafts.setdefault(host, _Draft())
        draft.add("engine")
        draft.secure = bool(entry.get("Secure", True))
        mirrors = entry.get("Mirrors")
        for mirror in mirrors if isinstance(mirrors, list) else []:
            draft.mirrors.append(str(mirror))
    mirrors = config.get("Mirrors")
    for mirror in mirrors if isinstance(mirrors, list) else []:
        if (host := _host_or_none(str(mirror))) is not None:
            drafts.setdefault(host, _Draft()).add("mirror")
    for host, draft in drafts.items():
        if draft.secure is None and _in_networks(host, networks):
            draft.secure = False  # like dockerd: an IP in InsecureRegistryCIDRs


async def _login_state(host: str, data: Mapping[str, Any]) -> tuple[Credentials | None, str, str]:
    """(credentials, where they are kept, problem) for ``host``."""
    try:
        creds = await dockerconfig.load(host)
    except CredentialError as err:
        return None, "", str(err)
    if creds is None:
        return None, "", ""
    helper = dockerconfig._helper_for(dict(data), host)
    return creds, f"helper {helper}" if helper else "config.json", ""


async def list_registries(
    docker: aiodocker.Docker | None, image_refs: Iterable[str]
) -> tuple[list[RegistryRow], str]:
    """Every registry known from the docker config, the engine and ``image_refs``, with its
    login state; and a one-line problem with the config or the engine ("" when none)."""
    drafts: dict[str, _Draft] = {}
    problems: list[str] = []
    try:
        data = await asyncio.to_thread(dockerconfig._read, dockerconfig.config_file())
    except CredentialError as err:
        data, problems = {}, [str(err)]
    _from_config(data, drafts)
    for ref in image_refs:
        try:
            host = dockerconfig.image_registry(ref)
        except CredentialError:
            continue
        draft = drafts.setdefault(host, _Draft())
        draft.add("images")
        draft.images += 1
    if docker is not None:
        from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

        try:
            _from_info(await docker.system.info(), drafts)
        except DockerError as err:
            problems.append(f"the engine's registry settings: {one_line(err.message)}")
    rows: list[RegistryRow] = []
    for host, draft in drafts.items():
        creds, store, problem = await _login_state(host, data)
        rows.append(
            RegistryRow(
                host=host,
                logged_in=creds is not None,
                username=(creds.username or "<token>") if creds is not None else "",
                store=store,
                sources=tuple(draft.sources),
                secure=draft.secure,
                mirrors=tuple(draft.mirrors),
                images=draft.images,
                problem=problem,
            )
        )
    return rows, "; ".join(problems)


# -- login / logout --------------------------------------------------------------------------


async def login(docker: aiodocker.Docker, server: str, username: str, password: str) -> str:
    """Verify the credentials through the engine (``POST /auth``) and store them like
    ``docker login``; returns a one-line summary. Raises ``RegistryProblem``."""
    from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

    from tui.cli.login import verify

    try:
        host = dockerconfig.registry_host(server)
    except CredentialError as err:
        raise RegistryProblem(str(err)) from None
    if not username.strip():
        raise RegistryProblem("type a user name")
    if not password:
        raise RegistryProblem("type the password (or an access token)")
    creds = Credentials(username=username.strip(), password=password)
    try:
        token = await verify(docker, host, creds)
    except DockerError as err:
        raise RegistryProblem(one_line(err.message), err.status) from None
    if token:
        creds = Credentials(username=creds.username, identity_token=token)
    try:
        stored_in = await dockerconfig.store(host, creds)
    except CredentialError as err:
        raise RegistryProblem(str(err)) from None
    where = f"in {stored_in}" if stored_in is not None else "by the credential helper"
    return f"Logged in to {host} as {creds.username} (kept {where})"


async def logout(host: str) -> str:
    """Forget the stored credentials of ``host``; a one-line summary."""
    try:
        removed = await dockerconfig.erase(host)
    except CredentialError as err:
        raise RegistryProblem(str(err)) from None
    return f"Logged out of {host}" if removed else f"Not logged in to {host}"


# -- browse ----------------------------------------------------------------------------------


async def _browse(docker: aiodocker.Docker, path: str, name: str) -> Any:
    from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

    from tui.cli.registry import PREFIX, _auth_headers

    try:
        headers = await _auth_headers(name)
    except CredentialError as err:
        raise RegistryProblem(str(err)) from None
    try:
        return await docker._query_json(
            f"{PREFIX}/{path}", "GET", headers=headers, versioned_api=False
        )
    except DockerError as err:
        message = one_line(err.message)
        if err.status == 404 and message.lower() in ("page not found", "404 page not found"):
            raise RegistryProblem(NOT_PORTSIDE, 404) from None
        raise RegistryProblem(message, err.status) from None


async def catalog(docker: aiodocker.Docker, host: str) -> list[str]:
    """The repositories ``host`` lists (``RegistryProblem`` with status 403 when it does not
    offer its catalog)."""
    from tui.cli.registry import _path

    reply = await _browse(docker, f"registries/{_path(host)}/catalog", f"{host}/x")
    return [str(name) for name in (reply or {}).get("Repositories") or []]


async def tags(docker: aiodocker.Docker, repository: str) -> list[str]:
    """The tags of ``repository`` (``HOST/NAME``)."""
    from tui.cli.registry import _path

    reply = await _browse(docker, f"repositories/{_path(repository)}/tags", repository)
    return [str(tag) for tag in (reply or {}).get("Tags") or []]


async def manifest(docker: aiodocker.Docker, ref: str) -> dict[str, Any]:
    """What ``ref`` points at: platforms of an index, or config and layers of an image."""
    from tui.cli.registry import _path

    reply = await _browse(docker, f"manifests/{_path(ref)}", ref)
    if not isinstance(reply, dict):
        raise RegistryProblem(f"the engine sent no manifest details for {ref}")
    return reply


def check_repository(text: str) -> str | None:
    """A one-line problem with a typed repository name, or None."""
    if not text:
        return "type a repository name such as team/app"
    if any(ch.isspace() for ch in text) or any(ch in text for ch in ":@"):
        return "a repository name has no spaces, tag or digest (team/app)"
    if text != text.strip("/") or "//" in text:
        return "a repository name cannot start or end with '/' or contain '//'"
    return None


# -- push ------------------------------------------------------------------------------------


def split_target(target: str) -> tuple[str, str]:
    """``HOST/REPO[:TAG]`` -> (name, tag); ``RegistryProblem`` for what cannot be pushed."""
    text = target.strip()
    if not text or any(ch.isspace() for ch in text):
        raise RegistryProblem("type where to push, such as registry.example:5000/team/app:1")
    if "@" in text:
        raise RegistryProblem("cannot push to a digest: give HOST/REPOSITORY[:TAG]")
    name, tag = split_ref(text)
    if "/" not in name or text != text.strip("/:"):
        raise RegistryProblem("give the registry and repository: HOST/REPOSITORY[:TAG]")
    return name, tag or "latest"


async def push_image(
    docker: aiodocker.Docker, source: str, target: str
) -> AsyncIterator[dict[str, Any]]:
    """Tag ``source`` as ``target`` and push it with the user's stored credentials; yields
    the engine's progress objects. Raises ``RegistryProblem``."""
    from aiodocker import DockerError  # loaded with the client (tui.client.open_client)

    name, tag = split_target(target)
    try:
        await docker.images.tag(source, repo=name, tag=tag)
    except DockerError as err:
        raise RegistryProblem(f"cannot tag {source}: {one_line(err.message)}", err.status) from None
    try:
        push_name, auth = await dockerconfig.request_auth(name)
    except CredentialError as err:
        raise RegistryProblem(str(err)) from None
    try:
        async for event in docker.images.push(push_name, tag=tag, auth=auth, stream=True):
            yield event
    except DockerError as err:
        raise RegistryProblem(one_line(err.message), err.status) from None


@dataclass(slots=True)
class PushLayer(LayerState):
    """A layer being pushed: one phase, so the bar fills from 0 to 1 while uploading."""

    @property
    def fraction(self) -> float:
        if self.done:
            return 1.0
        return min(1.0, self.current / self.total) if self.total else 0.0


_PUSHED = ("pushed", "layer already exists")


class PushProgress:
    """State of one push, updated event by event (Docker's JSON progress shape)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.layers: dict[str, PushLayer] = {}
        self.lines: list[str] = []
        self.error: str | None = None
        self.digest = ""

    def feed(self, event: Mapping[str, Any]) -> str | None:
        """Apply one stream object; the id of the layer it changed, if any."""
        error = event.get("error") or (event.get("errorDetail") or {}).get("message")
        if error:
            self.error = one_line(str(error))
            return None
        aux = event.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("Digest"), str):
            self.digest = aux["Digest"]
        status = str(event.get("status") or "").strip()
        layer_id = event.get("id")
        if not layer_id:
            if status:
                self.lines.append(status)
            return None
        layer = self.layers.get(str(layer_id))
        if layer is None:
            layer = self.layers[str(layer_id)] = PushLayer(str(layer_id), phase=DOWNLOAD)
        layer.status = status
        lowered = status.lower()
        if lowered in _PUSHED or lowered.startswith("mounted from"):
            layer.done = True
            return layer.id
        detail = event.get("progressDetail")
        if isinstance(detail, Mapping):
            current, total = detail.get("current"), detail.get("total")
            if isinstance(current, int) and not isinstance(current, bool):
                layer.current = current
            if isinstance(total, int) and not isinstance(total, bool) and total > 0:
                layer.total = layer.size = total
        return layer.id

    @property
    def fraction(self) -> float:
        if not self.layers:
            return 0.0
        return sum(layer.fraction for layer in self.layers.values()) / len(self.layers)


def config_dir_hint() -> Path:
    """Where credentials go when no helper is configured (shown in the login dialog)."""
    return dockerconfig.config_file()
