"""The bridge driver: docker's bridge networking (what the CNI bridge, host-local, portmap and
firewall plugins do), with one ``ip -batch`` per side and one ``iptables-restore`` per change.

Per network, once per engine process (``ensure``): the bridge device with the gateway
address, ``ip_forward`` and ``route_localnet`` on, and three chains named after the bridge
(``PSP-<br>`` nat POSTROUTING: outbound NAT, host-to-published-port and hairpin SNAT;
``PSD-<br>`` nat PREROUTING/OUTPUT for local destinations: the published ports' DNAT;
``PSF-<br>`` filter FORWARD: traffic to and from the bridge accepted). Per container
(``add_veth``/``del_veth``): a veth pair whose inside end is created in the container's
namespace with its address, MAC and default route. Published ports are the DNAT chain,
rewritten as a whole (``set_ports``) whenever a container with ports comes or goes.
``teardown`` removes the bridge and its chains when the network is idle.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PortsideError
from engine.network.ports import PortMapping

LOCK_FILE = Path("/run/portside-bridges.lock")
NETNS_DIR = "/run/netns"


class BridgeError(PortsideError):
    """A bridge, veth or iptables operation failed."""


@dataclass(frozen=True)
class BridgeNet:
    """What the driver needs to know of one bridge network."""

    bridge: str
    subnet: str
    gateway: str
    masquerade: bool = True
    internal: bool = False
    mtu: int = 0

    @property
    def prefix_len(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen


async def _run(argv: Sequence[str], stdin: str = "") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin else None)
    return proc.returncode or 0, out.decode(errors="replace")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


async def ip_batch(lines: Iterable[str], netns: str = "", *, what: str) -> None:
    """Run ``ip -batch`` (inside ``netns``, a /run/netns name or a namespace path, if given);
    a one-line BridgeError naming ``what`` on failure."""
    script = "".join(f"{line}\n" for line in lines)
    argv = ["ip", "-batch", "-"]
    if netns and "/" in netns and not netns.startswith(f"{NETNS_DIR}/"):
        argv = ["nsenter", f"--net={netns}", *argv]
    elif netns:
        argv = ["ip", "-n", os.path.basename(netns), "-batch", "-"]
    code, out = await _run(argv, script)
    if code != 0:
        raise BridgeError(f"{what} failed: {_one_line(out) or f'ip exited with {code}'}")


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def veth_name(container_id: str, network_id: str) -> str:
    """The host end of a container's veth on one network (15 characters at most)."""
    return "pv" + hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()[:11]


def mac_for(ip: str) -> str:
    """Docker's MAC for an address: 02:42 and the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


class HostLock:
    """A host-wide lock (flock on ``LOCK_FILE``) so engines pick bridge subnets one at a
    time; waited for without blocking the event loop, released if the waiter is cancelled."""

    def __init__(self) -> None:
        self._fd = -1

    async def __aenter__(self) -> HostLock:
        try:
            fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise BridgeError(
                f"cannot open {LOCK_FILE}: {err.strerror}; bridge networks need root"
            ) from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    async def __aexit__(self, *exc: object) -> None:
        os.close(self._fd)  # releases the flock


def _chain(prefix: str, bridge: str) -> str:
    return f"{prefix}-{bridge}"


def _jumps(net: BridgeNet) -> list[tuple[str, str, str]]:
    """(table, built-in chain, rule) of the jumps into the network's chains."""
    dnat = _chain("PSD", net.bridge)
    return [
        ("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL -j {dnat}"),
        ("nat", "OUTPUT", f"-m addrtype --dst-type LOCAL -j {dnat}"),
        ("nat", "POSTROUTING", f"-j {_chain('PSP', net.bridge)}"),
        ("filter", "FORWARD", f"-j {_chain('PSF', net.bridge)}"),
    ]


def _base_rules(net: BridgeNet) -> dict[str, list[str]]:
    post, fwd, br = _chain("PSP", net.bridge), _chain("PSF", net.bridge), net.bridge
    nat = [f":{post} - [0:0]", f":{_chain('PSD', br)} - [0:0]"]
    filt = [f":{fwd} - [0:0]"]
    if net.internal:
        filt += [f"-A {fwd} -i {br} -o {br} -j ACCEPT", f"-A {fwd} -i {br} -j DROP"]
        filt.append(f"-A {fwd} -o {br} -j DROP")
    else:
        if net.masquerade:
            nat.append(f"-A {post} -s {net.subnet} ! -o {br} -j MASQUERADE")
        # the host (127.0.0.1 included) reaching a published port, and hairpin traffic
        nat.append(f"-A {post} -o {br} -m addrtype --src-type LOCAL -j MASQUERADE")
        nat.append(f"-A {post} -o {br} -s {net.subnet} -m conntrack --ctstate DNAT -j MASQUERADE")
        filt += [f"-A {fwd} -i {br} -j ACCEPT", f"-A {fwd} -o {br} -j ACCEPT"]
    return {"nat": nat, "filter": filt}


def _restore_text(tables: dict[str, list[str]]) -> str:
    parts = []
    for table, lines in tables.items():
        if lines:
            parts += [f"*{table}", *lines, "COMMIT"]
    return "".join(f"{p}\n" for p in parts)


async def _restore(tables: dict[str, list[str]], what: str) -> None:
    code, out = await _run(["iptables-restore", "-w", "--noflush"], _restore_text(tables))
    if code != 0:
        raise BridgeError(f"{what} failed: {_one_line(out)}")


async def _saved() -> str:
    code, out = await _run(["iptables-save"])
    if code != 0:
        raise BridgeError(f"iptables-save failed: {_one_line(out)}")
    return out


def _write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


async def ensure(net: BridgeNet, ports: Sequence[tuple[str, PortMapping]] = ()) -> None:
    """Create (or adopt) the bridge with its address and its rules; ``ports`` are the
    published ports of the network's containers, as (container address, mapping)."""
    plen = net.prefix_len
    lines = []
    if not link_exists(net.bridge):
        mtu = f" mtu {net.mtu}" if net.mtu else ""
        lines.append(f"link add name {net.bridge}{mtu} type bridge")
    lines += [f"addr replace {net.gateway}/{plen} dev {net.bridge}", f"link set {net.bridge} up"]
    await ip_batch(lines, what=f"creating bridge {net.bridge}")
    if not net.internal:
        await asyncio.to_thread(_write_sysctl, "/proc/sys/net/ipv4/ip_forward", "1")
        await asyncio.to_thread(
            _write_sysctl, f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet", "1"
        )
    saved = set((await _saved()).splitlines())
    tables = _base_rules(net)
    tables["nat"] += _dnat_rules(net, ports)
    for table, chain, rule in _jumps(net):
        if f"-A {chain} {rule}" not in saved:
            # FORWARD: ahead of a DROP policy's rules (dockerd's); nat: appended
            verb = f"-I {chain} 1" if table == "filter" else f"-A {chain}"
            tables[table].append(f"{verb} {rule}")
    await _restore(tables, f"setting up the rules of bridge {net.bridge}")


def _dnat_rules(net: BridgeNet, ports: Sequence[tuple[str, PortMapping]]) -> list[str]:
    chain = _chain("PSD", net.bridge)
    out = []
    for addr, m in ports:
        dst = f"-d {m.host_ip} " if m.host_ip and m.host_ip != "0.0.0.0" else ""
        out.append(
            f"-A {chain} {dst}-p {m.protocol} -m {m.protocol} --dport {m.host_port} "
            f"-j DNAT --to-destination {addr}:{m.container_port}"
        )
    return out


async def set_ports(net: BridgeNet, ports: Sequence[tuple[str, PortMapping]]) -> None:
    """Rewrite the network's DNAT chain to publish exactly ``ports``."""
    chain = _chain("PSD", net.bridge)
    await _restore(
        {"nat": [f":{chain} - [0:0]", *_dnat_rules(net, ports)]},
        f"publishing ports on bridge {net.bridge}",
    )


async def teardown(bridge: str) -> None:
    """Remove a bridge and its chains (nothing missing is an error)."""
    saved = await _saved()
    chains = {_chain(p, bridge) for p in ("PSP", "PSD", "PSF")}
    table = ""
    deletes: dict[str, list[str]] = {"nat": [], "filter": []}
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and table in deletes:
            parts = line.split()
            if parts[1] not in chains and parts[-1] in chains and parts[-2] == "-j":
                deletes[table].append("-D" + line[2:])
    for table, prefixes in (("nat", ("PSP", "PSD")), ("filter", ("PSF",))):
        for p in prefixes:
            if f":{_chain(p, bridge)} " in saved:
                deletes[table] += [f"-F {_chain(p, bridge)}", f"-X {_chain(p, bridge)}"]
    for table, lines in deletes.items():  # one table at a time: nft refuses them together
        if lines:
            await _restore({table: lines}, f"removing the rules of bridge {bridge}")
    if link_exists(bridge):
        await _run(["ip", "link", "delete", bridge])


async def add_veth(
    net: BridgeNet,
    netns: str,
    host_if: str,
    ifname: str,
    ip: str,
    *,
    first: bool,
) -> str:
    """Plug a namespace into the bridge: its ``ifname`` gets ``ip`` (and, when ``first``,
    the default route and loopback up). Returns the inside MAC. Undone on failure."""
    mac = mac_for(ip)
    mtu = f" mtu {net.mtu}" if net.mtu else ""
    by_path = "/" in netns and not netns.startswith(f"{NETNS_DIR}/")
    if by_path:  # an unnamed namespace: make the pair here, move the inside end by path
        peer = f"{host_if}i"
        host_lines = [f"link add {host_if}{mtu} type veth peer name {peer}{mtu}"]
    else:
        peer = ifname
        host_lines = [
            f"link add {host_if}{mtu} type veth peer name {ifname}{mtu} address {mac} "
            f"netns {os.path.basename(netns)}"
        ]
    host_lines += [
        f"link set {host_if} master {net.bridge}",
        f"link set {host_if} type bridge_slave hairpin on",
        f"link set {host_if} up",
    ]
    try:
        await ip_batch(host_lines, what=f"creating veth {host_if}")
        inside = []
        if by_path:
            await _move_by_path(peer, netns)
            inside.append(f"link set {peer} name {ifname} address {mac}")
        if first:
            inside.append("link set lo up")
        inside += [f"addr add {ip}/{net.prefix_len} dev {ifname}", f"link set {ifname} up"]
        if first and not net.internal:
            inside.append(f"route add default via {net.gateway} dev {ifname}")
        await ip_batch(inside, netns, what=f"configuring {ifname} in {netns}")
    except BaseException:
        await _run(["ip", "link", "delete", host_if])
        raise
    return mac


async def _move_by_path(link: str, path: str) -> None:
    code, out = await _run(["ip", "link", "set", link, "netns", path])
    if code != 0:
        raise BridgeError(f"moving {link} into {path} failed: {_one_line(out)}")


async def del_veth(host_if: str) -> None:
    """Unplug a container (its veth may be gone with its namespace already)."""
    if link_exists(host_if):
        await _run(["ip", "link", "delete", host_if])


def free_address(
    subnet: str, gateway: str, ip_range: str, used: Iterable[str], after: str = ""
) -> ipaddress.IPv4Address:
    """The first host address of ``ip_range`` (or ``subnet``) after ``after`` (round robin,
    as CNI's host-local: a just-released address is not handed out again at once) that is
    neither the gateway nor in ``used``."""
    net = ipaddress.IPv4Network(subnet)
    rng = ipaddress.IPv4Network(ip_range) if ip_range else net
    taken = {ipaddress.IPv4Address(gateway), *(ipaddress.IPv4Address(u) for u in used)}
    hosts = [
        a
        for a in (rng.hosts() if rng.prefixlen < 31 else rng)
        if a not in (net.network_address, net.broadcast_address)
    ]
    start = 0
    if after and ipaddress.IPv4Address(after) in rng:
        start = next((i + 1 for i, a in enumerate(hosts) if a == ipaddress.IPv4Address(after)), 0)
    for addr in hosts[start:] + hosts[:start]:
        if addr not in taken:
            return addr
    raise BridgeError(f"no free address left in {ip_range or subnet}: remove containers first")
