"""Linux capabilities: names, docker's default set, ``--cap-add/--cap-drop`` and privileged.

Docker's default set has 14 capabilities (podman drops MKNOD, NET_RAW and AUDIT_WRITE; we
follow docker). Nothing outside this process's own bounding set is ever requested: the
kernel refuses to grant what the engine does not hold (these machines lack
CAP_SYS_RESOURCE), so ``--privileged`` and ``--cap-add ALL`` mean "everything we have".
"""

from __future__ import annotations

from functools import cache

from engine.errors import InvalidArgument

ALL_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


@cache
def available() -> tuple[str, ...]:
    """Capabilities in this process's bounding set (what a container can be given)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return tuple(c for i, c in enumerate(ALL_CAPS) if mask >> i & 1)
    except OSError:
        pass
    return ALL_CAPS


def normalize(name: str) -> str:
    """``net_admin`` / ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPS:
        raise InvalidArgument(f"unknown capability {name!r}: use a name like NET_ADMIN")
    return upper


def effective_set(
    *, privileged: bool, cap_add: list[str] | None, cap_drop: list[str] | None
) -> list[str]:
    """The capability set of a container, docker's rules: drops apply after adds."""
    have = available()
    if privileged:
        return list(have)
    adds = [normalize(c) for c in cap_add or []]
    drops = [normalize(c) for c in cap_drop or []]
    caps: list[str] = list(DEFAULT_CAPS)
    if "ALL" in adds:
        caps = list(ALL_CAPS)
    else:
        caps.extend(c for c in adds if c not in caps)
    if "ALL" in drops:
        caps = [c for c in adds if c != "ALL"] if "ALL" not in adds else []
    else:
        caps = [c for c in caps if c not in drops]
    missing = [c for c in caps if c not in have and c in adds]
    if missing and "ALL" not in adds:
        raise InvalidArgument(
            f"cannot add {missing[0]}: the engine itself does not hold it on this host"
        )
    return [c for c in caps if c in have]
