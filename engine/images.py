"""The image service: pull, list, inspect, history, tag, remove and prune.

Answers are shaped like dockerd's (``/images/json`` items, ``docker image inspect``,
``docker history``) so the API layer only translates. Names resolve the way docker resolves
them: a tag (``debian``, ``debian:12``, ``host:5000/app:1``), a repo digest
(``debian@sha256:...``), a full image id or a unique id prefix.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.digest import Digest, chain_ids
from engine.errors import Conflict, Forbidden, InvalidArgument, NotFound, PortsideError
from engine.policy import ImagePolicy
from engine.progress import ProgressCallback
from engine.pull import Puller, parse_platform
from engine.reference import Reference
from engine.store.metadata import ImageRow

if TYPE_CHECKING:
    from engine.events import EventBus
    from engine.registry.credentials import AuthConfig
    from engine.store.content import ContentStore
    from engine.store.gc import GarbageCollector
    from engine.store.metadata import Metadata
    from engine.store.snapshots import Snapshotter

# Given an image id, the ids/names of containers using it (set by the container service).
InUseCheck = Callable[[str], Awaitable[list[str]]]


def _familiar(name: str) -> str:
    """``docker.io/library/debian:12`` -> ``debian:12`` (tags and repo digests)."""
    try:
        if "@" in name:
            return Reference.parse(name).familiar()
        return Reference.parse(name).familiar()
    except PortsideError:
        return name


def _unix(created: str | None) -> int:
    if not created:
        return 0
    try:
        text = created.replace("Z", "+00:00")
        if "." in text:  # trim nanoseconds to microseconds
            head, _, tail = text.partition(".")
            frac = "".join(c for c in tail if c.isdigit())
            zone = tail[len(frac) :]
            text = f"{head}.{frac[:6]}{zone}"
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


class ImageService:
    """Images of one engine root."""

    def __init__(
        self,
        *,
        content: ContentStore,
        metadata: Metadata,
        snapshots: Snapshotter,
        puller: Puller,
        gc: GarbageCollector,
        events: EventBus,
    ) -> None:
        self.content = content
        self.metadata = metadata
        self.snapshots = snapshots
        self.puller = puller
        self.gc = gc
        self.events = events
        self.in_use: InUseCheck | None = None
        self._configs: dict[str, dict[str, Any]] = {}

    # -- pull ---------------------------------------------------------------------------

    async def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        auth: AuthConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Pull ``ref``; returns the image id."""
        reference = Reference.parse(ref)
        result = await self.puller.pull(
            reference, platform=parse_platform(platform), auth=auth, progress=progress
        )
        self.events.publish("image", "pull", reference.familiar(), {"name": reference.familiar()})
        return result.image_id

    # -- lookups ------------------------------------------------------------------------

    async def resolve(self, name: str) -> str:
        """The image id ``name`` designates, or NotFound("No such image: NAME").

        As in docker, a name that is a tag or repo digest wins over an id prefix that happens
        to look the same (an image tagged ``cafe`` versus an id starting ``cafe``).
        """
        if not name:
            raise InvalidArgument("image name is empty")
        md = self.metadata
        if name.startswith("sha256:"):
            return await self._resolve_id(name)
        try:
            ref = Reference.parse(name)
        except InvalidArgument:
            ref = None
        if ref is not None and ref.digest is not None:
            found = await md.run(md.repo_digest_target, f"{ref.name}@{ref.digest}")
            if found:
                return found
            # docker also accepts name@<image id>
            if await md.run(md.get_image, str(ref.digest)):
                return str(ref.digest)
        elif ref is not None and ref.tag:
            found = await md.run(md.tag_target, ref.tagged_str())
            if found:
                return found
        if all(c in "0123456789abcdef" for c in name):
            return await self._resolve_id(name)
        raise NotFound(f"No such image: {name}")

    async def check_policy(self, name: str, image_id: str, action: str) -> None:
        """Apply the engine's image policy to using a local image (``run``, ``build``).

        An image named by reference is checked by that name; one named by id by every name
        it carries, so an id cannot smuggle past a rule its names would break.
        """
        policy = ImagePolicy.from_config(self.puller.registry.config)
        if policy.empty:
            return
        md = self.metadata
        if not await self._named_by_id(name, image_id):
            policy.check(Reference.parse(name), action)
            return
        names = [*await md.run(md.tags_of, image_id), *await md.run(md.repo_digests_of, image_id)]
        if not names:
            raise Forbidden(
                f"{action} of image {image_id[7:19]} refused: it has no name for the engine's "
                "image policy to check; tag it or use it by name"
            )
        for full in names:
            policy.check(Reference.parse(full), action)

    async def record_image(
        self,
        config: dict[str, Any],
        layers: list[dict[str, Any]],
        *,
        size: int,
        tagged: bool = False,
    ) -> str:
        """Store a locally made image (commit, build): its config and an OCI manifest over
        ``layers`` (manifest layer descriptors whose blobs and snapshots already exist),
        then the image record; returns the image id."""
        from engine.oci import OCI_CONFIG, OCI_MANIFEST

        config_raw = json.dumps(config, separators=(",", ":")).encode()
        config_digest = Digest.of_bytes(config_raw)
        await self.content.put(config_digest, config_raw)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": str(config_digest),
                "size": len(config_raw),
            },
            "layers": layers,
        }
        manifest_raw = json.dumps(manifest, separators=(",", ":")).encode()
        manifest_digest = Digest.of_bytes(manifest_raw)
        await self.content.put(manifest_digest, manifest_raw)
        image_id = str(config_digest)
        now = time.time()
        row = ImageRow(
            id=image_id,
            manifest_digest=str(manifest_digest),
            manifest_media_type=OCI_MANIFEST,
            created=config.get("created"),
            size=size,
            added=now,
            last_tag_time=now if tagged else None,
        )
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        chains = [str(c) for c in chain_ids([Digest.parse(d) for d in diff_ids])]
        blobs = [image_id, str(manifest_digest), *(str(layer["digest"]) for layer in layers)]
        await self.metadata.run(self.metadata.put_image, row, blobs, chains)
        return image_id

    async def _named_by_id(self, name: str, image_id: str) -> bool:
        """Whether ``resolve(name)`` found ``image_id`` by its id rather than by a name."""
        if name.startswith("sha256:"):
            return True
        if not image_id.removeprefix("sha256:").startswith(name):
            return False
        try:
            ref = Reference.parse(name)
        except InvalidArgument:
            return True
        md = self.metadata
        return ref.tag is None or await md.run(md.tag_target, ref.tagged_str()) != image_id

    async def _resolve_id(self, name: str) -> str:
        ids = await self.metadata.run(self.metadata.find_image_ids, name)
        if len(ids) > 1:
            raise Conflict(f"image id prefix {name!r} is ambiguous; give more characters")
        if not ids:
            raise NotFound(f"No such image: {name}")
        return ids[0]

    async def config(self, image_id: str) -> dict[str, Any]:
        cached = self._configs.get(image_id)
        if cached is None:
            raw = await asyncio.to_thread(self.content.read, Digest.parse(image_id))
            cached = json.loads(raw)
            self._configs[image_id] = cached
        return cached

    async def _row(self, image_id: str) -> ImageRow:
        row = await self.metadata.run(self.metadata.get_image, image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return row

    # -- list / inspect / history -------------------------------------------------------

    async def list_images(
        self, *, all: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[dict[str, Any]]:
        md = self.metadata
        rows = await md.run(md.list_images)
        tags = await md.run(md.all_tags)
        digests = await md.run(md.all_repo_digests)
        out: list[dict[str, Any]] = []
        for row in rows:
            config = await self.config(row.id)
            repo_tags = [_familiar(t) for t in tags.get(row.id, [])]
            item = {
                "Id": row.id,
                "ParentId": "",
                "RepoTags": repo_tags,
                "RepoDigests": [_familiar(d) for d in digests.get(row.id, [])],
                "Created": _unix(row.created),
                "Size": row.size,
                "SharedSize": -1,
                "VirtualSize": row.size,
                "Labels": (config.get("config") or {}).get("Labels") or {},
                "Containers": -1,
            }
            if self._filter(item, row, filters or {}):
                out.append(item)
        out.sort(key=lambda i: i["Created"], reverse=True)
        return out

    def _filter(self, item: dict[str, Any], row: ImageRow, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "dangling":
                want = values[-1].lower() in ("true", "1")
                if (not item["RepoTags"]) != want:
                    return False
            elif key == "reference":
                names = [t for t in item["RepoTags"]]
                repos = [t.rsplit(":", 1)[0] for t in names]
                if not any(
                    fnmatch.fnmatchcase(n, pat) or fnmatch.fnmatchcase(r, pat)
                    for pat in values
                    for n, r in zip(names, repos, strict=True)
                ):
                    return False
            elif key == "label":
                labels = item["Labels"]
                for want_label in values:
                    k, eq, v = want_label.partition("=")
                    if k not in labels or (eq and labels[k] != v):
                        return False
            elif key in ("before", "since"):
                continue  # applied by the caller that knows the reference image
            else:
                raise InvalidArgument(f"invalid filter {key!r}")
        return True

    async def inspect(self, name: str) -> dict[str, Any]:
        image_id = await self.resolve(name)
        row = await self._row(image_id)
        config = await self.config(image_id)
        md = self.metadata
        tags = [_familiar(t) for t in await md.run(md.tags_of, image_id)]
        digests = [_familiar(d) for d in await md.run(md.repo_digests_of, image_id)]
        chains = await md.run(md.image_refs, image_id, "chain")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        graph: dict[str, str] = {}
        if diff_ids:
            ordered = [str(c) for c in _chains_in_order(diff_ids)]
            if set(ordered) <= set(chains) and all(
                self.snapshots.exists(Digest.parse(c)) for c in ordered
            ):
                lowers = self.snapshots.lowers(Digest.parse(ordered[-1]))
                graph = {"LowerDir": ":".join(str(p) for p in lowers)}
        cfg = config.get("config") or {}
        return {
            "Id": image_id,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": "",
            "Comment": _comment(config),
            "Created": config.get("created") or "",
            "Container": config.get("container", ""),
            "ContainerConfig": config.get("container_config") or _empty_config(),
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": _docker_config(cfg),
            "Architecture": config.get("architecture", ""),
            **({"Variant": config["variant"]} if config.get("variant") else {}),
            "Os": config.get("os", ""),
            "Size": row.size,
            "VirtualSize": row.size,
            "GraphDriver": {"Name": self.snapshots.driver, "Data": graph},
            "RootFS": {"Type": "layers", "Layers": list(diff_ids)},
            "Metadata": {"LastTagTime": _rfc3339(row.last_tag_time)},
        }

    async def history(self, name: str) -> list[dict[str, Any]]:
        image_id = await self.resolve(name)
        config = await self.config(image_id)
        md = self.metadata
        tags = [_familiar(t) for t in await md.run(md.tags_of, image_id)]
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        chains = _chains_in_order(diff_ids)
        sizes: list[int] = []
        for chain in chains:
            layer = await md.run(md.get_layer, str(chain))
            sizes.append(layer.size if layer else 0)
        history = config.get("history") or [
            {"created": config.get("created", ""), "created_by": ""} for _ in diff_ids
        ]
        entries: list[dict[str, Any]] = []
        layer_index = 0
        for h in history:
            empty = bool(h.get("empty_layer"))
            size = 0
            if not empty and layer_index < len(sizes):
                size = sizes[layer_index]
                layer_index += 1
            entries.append(
                {
                    "Id": "<missing>",
                    "Created": _unix(h.get("created")),
                    "CreatedBy": h.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": h.get("comment", ""),
                }
            )
        entries.reverse()
        if entries:
            entries[0]["Id"] = image_id
            entries[0]["Tags"] = tags or None
        return entries

    # -- tag / remove / prune -----------------------------------------------------------

    async def tag(self, source: str, repo: str, tag: str | None) -> None:
        image_id = await self.resolve(source)
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        if "@" in repo:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {repo}")
        target = Reference.parse(f"{repo}:{tag}" if tag else repo)
        await self.metadata.run(self.metadata.set_tag, target.tagged_str(), image_id)
        self.events.publish("image", "tag", image_id, {"name": target.familiar()})

    async def remove(
        self, name: str, *, force: bool = False, noprune: bool = False
    ) -> list[dict[str, str]]:
        md = self.metadata
        image_id = await self.resolve(name)
        out: list[dict[str, str]] = []
        tags = await md.run(md.tags_of, image_id)
        digests = await md.run(md.repo_digests_of, image_id)
        by_name = self._names_match(name, tags, digests)
        users = await self.in_use(image_id) if self.in_use else []
        if by_name is not None and users and len(tags) <= 1 and not force:
            raise Conflict(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {users[0][:12]} is using its referenced image {image_id[7:19]}"
            )
        if by_name is not None:
            # A reference was given: untag it; the image goes only with its last tag.
            kind, full = by_name
            await md.run(md.remove_tag if kind == "tag" else md.remove_repo_digest, full)
            out.append({"Untagged": _familiar(full)})
            self.events.publish("image", "untag", image_id, {"name": _familiar(full)})
            tags = [t for t in tags if t != full]
            digests = [d for d in digests if d != full]
            if tags:
                return out
            repo = full.split("@", 1)[0] if kind == "digest" else full.rsplit(":", 1)[0]
            for d in [d for d in digests if d.split("@", 1)[0] == repo]:
                await md.run(md.remove_repo_digest, d)
                out.append({"Untagged": _familiar(d)})
                digests.remove(d)
            if digests:
                return out
        elif len({t.rsplit(":", 1)[0] for t in tags}) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {name} (must be forced) - image is referenced "
                "in multiple repositories"
            )
        if users:
            if by_name is not None:
                return out  # forced untag of an image a container uses: the image stays
            raise Conflict(
                f"conflict: unable to delete {name} (cannot be forced) - image is being used "
                f"by container {users[0][:12]}"
            )
        for t in tags:
            out.append({"Untagged": _familiar(t)})
            self.events.publish("image", "untag", image_id, {"name": _familiar(t)})
        for d in digests:
            out.append({"Untagged": _familiar(d)})
        await md.run(md.delete_image, image_id)
        self._configs.pop(image_id, None)
        out.append({"Deleted": image_id})
        self.events.publish("image", "delete", image_id, {"name": image_id})
        if not noprune:
            await self.gc.collect()
        return out

    @staticmethod
    def _names_match(name: str, tags: list[str], digests: list[str]) -> tuple[str, str] | None:
        try:
            ref = Reference.parse(name)
        except PortsideError:
            return None
        if ref.digest is not None:
            full = f"{ref.name}@{ref.digest}"
            return ("digest", full) if full in digests else None
        full = ref.tagged_str()
        if full in tags:
            return ("tag", full)
        return None

    async def prune(self, *, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Remove dangling images (``dangling=false``: every image no container uses)."""
        filters = dict(filters or {})
        dangling_only = (filters.pop("dangling", ["true"]) or ["true"])[-1].lower() in (
            "true",
            "1",
        )
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        for item in await self.list_images(filters=filters):
            if dangling_only and item["RepoTags"]:
                continue
            if self.in_use and await self.in_use(item["Id"]):
                continue
            before = item["Size"]
            try:
                result = await self.remove(item["Id"], force=True, noprune=True)
            except (NotFound, Conflict):
                continue
            deleted.extend(result)
            reclaimed += before
        gc = await self.gc.collect()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": max(reclaimed, gc.bytes_freed)}

    async def disk_usage(self) -> list[dict[str, Any]]:
        return await self.list_images()


def _chains_in_order(diff_ids: list[str]) -> list[Digest]:
    return chain_ids([Digest.parse(d) for d in diff_ids])


def _comment(config: dict[str, Any]) -> str:
    history = config.get("history") or []
    return history[-1].get("comment", "") if history else ""


def _empty_config() -> dict[str, Any]:
    return _docker_config({})


def _docker_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The image config's ``config`` object with the keys docker always shows."""
    out: dict[str, Any] = {
        "Hostname": "",
        "Domainname": "",
        "User": cfg.get("User", ""),
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": cfg.get("Env"),
        "Cmd": cfg.get("Cmd"),
        "Image": "",
        "Volumes": cfg.get("Volumes"),
        "WorkingDir": cfg.get("WorkingDir", ""),
        "Entrypoint": cfg.get("Entrypoint"),
        "OnBuild": cfg.get("OnBuild"),
        "Labels": cfg.get("Labels"),
    }
    for key in ("ExposedPorts", "Healthcheck", "StopSignal", "Shell", "ArgsEscaped"):
        if key in cfg:
            out[key] = cfg[key]
    return out


def _rfc3339(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts).astimezone().isoformat()
