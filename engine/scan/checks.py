"""Risky configuration of an image, each finding stating the evidence it rests on.

From the image config: running as root, secrets in the environment or in the build history,
no healthcheck. From the merged files: setuid/setgid files, world-writable files and
directories (sticky directories like /tmp excepted), and private keys in any layer (still
present, or deleted by a later layer but left inside the earlier blob). Secret values are
never repeated: a finding names the variable or the history step, not the secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.scan.walk import ImageFiles
from engine.store.tarstream import DIR, REG

HIGH, MEDIUM, LOW = "high", "medium", "low"
_SECRET_WORDS = (
    r"passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|"
    r"auth[_-]?key"
)
_SECRET_NAME_RE = re.compile(rf"(?i)(?:{_SECRET_WORDS})")
_NOT_SECRET_SUFFIX = ("_FILE", "_PATH", "_DIR", "_URL_FILE")
_SECRET_VALUE_RE = re.compile(
    r"(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abposr]-[A-Za-z0-9-]{10,}|"
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|glpat-[A-Za-z0-9_-]{20,})"
)
_HISTORY_ASSIGN_RE = re.compile(rf"(?i)\b([A-Z0-9_]*(?:{_SECRET_WORDS})[A-Z0-9_]*)=(\S+)")


@dataclass(frozen=True, order=True)
class Finding:
    """One risky fact about an image."""

    kind: str  # root-user, secret-env, secret-history, setuid, setgid, world-writable,
    # private-key, no-healthcheck
    severity: str
    message: str
    path: str = ""
    layer: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Kind": self.kind,
            "Severity": self.severity,
            "Message": self.message,
        }
        if self.path:
            out["Path"] = "/" + self.path
        if self.layer is not None:
            out["Layer"] = self.layer
        return out


def config_findings(config: dict[str, Any]) -> list[Finding]:
    """Findings from the image config (``config``, ``history``)."""
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    out: list[Finding] = []
    user = str(cfg.get("User") or "").strip()
    name = user.split(":", 1)[0]
    if name in ("", "root", "0"):
        shown = f"User is {user!r}" if user else "no User is set"
        out.append(Finding("root-user", MEDIUM, f"runs as root ({shown})"))
    for item in cfg.get("Env") or []:
        if not isinstance(item, str):
            continue
        key, _, value = item.partition("=")
        if not value:
            continue
        by_name = _SECRET_NAME_RE.search(key) and not key.upper().endswith(_NOT_SECRET_SUFFIX)
        if by_name or _SECRET_VALUE_RE.search(value):
            out.append(
                Finding("secret-env", HIGH, f"environment variable {key} holds a secret value")
            )
    history = config.get("history") if isinstance(config.get("history"), list) else []
    for step, entry in enumerate(history):
        text = entry.get("created_by") if isinstance(entry, dict) else None
        if not isinstance(text, str):
            continue
        names = sorted({m.group(1) for m in _HISTORY_ASSIGN_RE.finditer(text)})
        if _SECRET_VALUE_RE.search(text):
            names.append("a credential-shaped value")
        if names:
            out.append(
                Finding(
                    "secret-history",
                    HIGH,
                    f"build history step {step + 1} contains {', '.join(names)}",
                )
            )
    health = cfg.get("Healthcheck")
    test = health.get("Test") if isinstance(health, dict) else None
    if not test or test == ["NONE"]:
        out.append(Finding("no-healthcheck", LOW, "no healthcheck is defined"))
    return out


def file_findings(image: ImageFiles) -> list[Finding]:
    """Findings from the merged file table and the per-layer key search."""
    out: list[Finding] = []
    for path, info in sorted(image.files.items()):
        if info.type == REG and info.mode & 0o4000:
            out.append(
                Finding(
                    "setuid",
                    MEDIUM,
                    f"/{path} is setuid (mode {info.mode:04o}, owner uid {info.uid})",
                    path,
                    info.layer,
                )
            )
        if info.type == REG and info.mode & 0o2000:
            out.append(
                Finding(
                    "setgid",
                    MEDIUM,
                    f"/{path} is setgid (mode {info.mode:04o}, group gid {info.gid})",
                    path,
                    info.layer,
                )
            )
        sticky_dir = info.type == DIR and info.mode & 0o1000
        if info.type in (REG, DIR) and info.mode & 0o002 and not sticky_dir:
            what = "directory" if info.type == DIR else "file"
            out.append(
                Finding(
                    "world-writable",
                    MEDIUM,
                    f"/{path} is a world-writable {what} (mode {info.mode:04o})",
                    path,
                    info.layer,
                )
            )
    for hit in image.keys:
        current = image.files.get(hit.path)
        kind = f"{hit.kind} private key" if hit.kind else "private key"
        if current is not None and current.layer == hit.layer:
            where = "present in the image"
        else:
            where = "removed later, but still inside that layer's blob"
        out.append(
            Finding(
                "private-key",
                HIGH,
                f"{kind} in /{hit.path} (layer {hit.layer + 1}; {where})",
                hit.path,
                hit.layer,
            )
        )
    return out
