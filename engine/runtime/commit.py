"""``docker commit``: a container's changes become a new image layer.

The layer tar (whiteouts for deletions) is written once, hashed uncompressed (DiffID) and
gzip-compressed (blob digest) on the way to a temporary file; the blob goes into the content
store, is applied to the snapshotter through the same confined unpacker as pulled layers,
and a new OCI config (the container's config, edited by ``--change`` instructions, with a
history entry) and manifest are recorded like a pulled image.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.digest import Digest
from engine.errors import InvalidArgument, PortsideError
from engine.reference import Reference
from engine.store.new_layer import store_layer

if TYPE_CHECKING:
    from engine.images import ImageService

_CONFIG_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def _instruction_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidArgument(f"invalid JSON in change {text!r}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"invalid change {text!r}: give a JSON list of strings")
        return value
    return None


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise InvalidArgument(f"invalid {what} change {text!r}: {err}") from None
    if len(words) == 2 and "=" not in words[0]:
        return [(words[0], words[1])]
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid {what} change {text!r}: use KEY=VALUE")
        out.append((key, value))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Dockerfile instructions allowed by ``docker commit --change``."""
    cfg = dict(config)
    cmd_set = any(c.strip().split(" ")[0].upper() == "CMD" for c in changes)
    for change in changes:
        change = change.strip()
        if not change:
            continue
        word, _, rest = change.partition(" ")
        op = word.upper()
        rest = rest.strip()
        if op in ("CMD", "ENTRYPOINT", "SHELL"):
            value = _instruction_value(rest)
            if value is None:
                if op == "SHELL":
                    raise InvalidArgument("SHELL requires the JSON form")
                value = [*(cfg.get("Shell") or ["/bin/sh", "-c"]), rest]
            cfg[{"CMD": "Cmd", "ENTRYPOINT": "Entrypoint", "SHELL": "Shell"}[op]] = value
            if op == "ENTRYPOINT" and not cmd_set:
                cfg["Cmd"] = None  # as in a Dockerfile: a new ENTRYPOINT resets the old CMD
        elif op == "ENV":
            env = {e.split("=", 1)[0]: e for e in cfg.get("Env") or []}
            for key, value in _pairs(rest, "ENV"):
                env[key] = f"{key}={value}"
            cfg["Env"] = list(env.values())
        elif op == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(rest, "LABEL"))
            cfg["Labels"] = labels
        elif op == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for port in rest.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif op == "VOLUME":
            value = _instruction_value(rest) or rest.split()
            vols = dict(cfg.get("Volumes") or {})
            for v in value:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif op == "USER":
            cfg["User"] = rest
        elif op == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif op == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        elif op == "ONBUILD":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]
        else:
            raise InvalidArgument(
                f"{word} is not a valid change command: use CMD, ENTRYPOINT, ENV, EXPOSE, "
                "LABEL, ONBUILD, USER, VOLUME, WORKDIR or STOPSIGNAL"
            )
    return cfg


def _rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def commit(
    *,
    images: ImageService,
    parent_id: str,
    container_id: str,
    container_config: dict[str, Any],
    write_tar: Callable[[BinaryIO], None],
    workdir: Path,
    repo: str | None,
    tag: str | None,
    comment: str,
    author: str,
    changes: list[str],
    created_by: str,
) -> str:
    """Create the image; returns its id. ``write_tar`` writes the layer tar (in a thread)."""
    if repo:
        if "@" in repo:
            raise InvalidArgument(f"invalid reference format: repository name {repo!r}")
        target = Reference.parse(f"{repo}:{tag}" if tag else repo)
    else:
        target = None
    parent_config = await images.config(parent_id)
    parent_row = await images.metadata.run(images.metadata.get_image, parent_id)
    if parent_row is None:
        raise PortsideError(f"the container's image {parent_id[:19]} is gone; cannot commit")
    parent_manifest = json.loads(
        await asyncio.to_thread(images.content.read, Digest.parse(parent_row.manifest_digest))
    )
    new_cfg = apply_changes(
        {k: container_config.get(k) for k in _CONFIG_KEYS if container_config.get(k) is not None},
        changes,
    )
    async with images.gc.lease():
        parent_diff_ids = list((parent_config.get("rootfs") or {}).get("diff_ids") or [])
        layer = await store_layer(images, parent_diff_ids, write_tar, workdir)
        diff_ids = [*parent_diff_ids, str(layer.diff_id)]
        created = _rfc3339()
        history = list(parent_config.get("history") or [])
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if author:
            entry["author"] = author
        history.append(entry)
        config = {
            "architecture": parent_config.get("architecture", ""),
            "os": parent_config.get("os", "linux"),
            **({"variant": parent_config["variant"]} if parent_config.get("variant") else {}),
            "created": created,
            **({"author": author} if author else {}),
            "config": new_cfg,
            "container": container_id,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
        layers = list(parent_manifest.get("layers") or [])
        layers.append(layer.descriptor())
        image_id = await images.record_image(
            config, layers, size=parent_row.size + layer.size, tagged=target is not None
        )
        if target is not None:
            await images.metadata.run(images.metadata.set_tag, target.tagged_str(), image_id)
    return image_id
