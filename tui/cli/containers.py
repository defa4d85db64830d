"""Container and volume verbs (``run``, ``create``, ``start``, ``ps``, ``logs``, ``exec``, ...)
over the Docker Engine API with aiodocker, behaving like docker's.

``register(sub, engine_options)`` adds the verbs to the ``portside`` parser. Exit codes follow
docker: 125 when the engine refuses, 126 when the command cannot run, 127 when it is not
found, else the container's own code. ``run`` pulls a missing image (progress on stderr),
attaches before it starts, and with ``-it`` drives the local terminal (``tui/cli/tty.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import aiodocker
import aiohttp

from tui.cli import dockerconfig, ports
from tui.cli import tty as term
from tui.cli.images import VerbError
from tui.cli.output import table
from tui.cli.progress import ProgressPrinter
from tui.humanize import human_age, human_size, short_id
from tui.refs import split_ref

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


# -- flags -> ContainerCreate body ---------------------------------------------------------------


def parse_size(text: str, flag: str) -> int:
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise VerbError(f"invalid {flag} {text!r}: give a size like 64m or 1g", 125)
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _env_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise VerbError(f"cannot read env file {path}: {err.strerror}", 125) from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line if "=" in line else _env_entry(line))
    return out


def _env_entry(item: str) -> str:
    if "=" in item:
        return item
    value = os.environ.get(item)
    return f"{item}={value}" if value is not None else item


def _labels(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _restart(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    name, _, count = text.partition(":")
    if count and not count.isdigit():
        raise VerbError(f"invalid restart policy {text!r}: use on-failure:N", 125)
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def _ulimits(items: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for item in items or []:
        name, eq, values = item.partition("=")
        soft, _, hard = values.partition(":")
        try:
            out.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        except ValueError:
            raise VerbError(f"invalid ulimit {item!r}: use name=soft[:hard]", 125) from None
        if not eq:
            raise VerbError(f"invalid ulimit {item!r}: use name=soft[:hard]", 125)
    return out


def _tmpfs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        path, _, opts = item.partition(":")
        out[path] = opts
    return out


def _log_options(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise VerbError(f"invalid --log-opt {item!r}: use KEY=VALUE (max-size=10m)", 125)
        out[key] = value
    return out


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    """docker's ContainerCreate body from ``run``/``create`` flags."""
    env = []
    for path in args.env_file or []:
        env += _env_file(path)
    env += [_env_entry(e) for e in args.env or []]
    host: dict[str, Any] = {
        "Binds": list(args.volume or []) or None,
        "Tmpfs": _tmpfs(args.tmpfs) or None,
        "ReadonlyRootfs": args.read_only,
        "Privileged": args.privileged,
        "CapAdd": args.cap_add or None,
        "CapDrop": args.cap_drop or None,
        "SecurityOpt": args.security_opt or None,
        "Init": True if args.init else None,
        "AutoRemove": args.rm,
        "NetworkMode": args.network or "default",
        "Ulimits": _ulimits(args.ulimit) or None,
    }
    if args.memory:
        host["Memory"] = parse_size(args.memory, "--memory")
    if args.cpus:
        try:
            host["NanoCpus"] = int(float(args.cpus) * 1e9)
        except ValueError:
            raise VerbError(f"invalid --cpus {args.cpus!r}: give a number", 125) from None
    if args.pids_limit is not None:
        host["PidsLimit"] = args.pids_limit
    policy = _restart(args.restart)
    if policy:
        host["RestartPolicy"] = policy
    exposed, bindings = ports.parse_publish(args.publish or [])
    exposed.update(ports.parse_expose(args.expose or []))
    if bindings:
        host["PortBindings"] = bindings
    if args.publish_all:
        host["PublishAllPorts"] = True
    for field, values in (
        ("ExtraHosts", args.add_host),
        ("Dns", args.dns),
        ("DnsSearch", args.dns_search),
        ("DnsOptions", args.dns_option),
    ):
        if values:
            host[field] = list(values)
    if args.log_opt:
        host["LogConfig"] = {"Type": "json-file", "Config": _log_options(args.log_opt)}
    body: dict[str, Any] = {
        "Image": args.image,
        "Cmd": list(args.command) or None,
        "Env": env or None,
        "User": args.user or "",
        "WorkingDir": args.workdir or "",
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "StdinOnce": args.interactive,
        "AttachStdin": args.interactive,
        "AttachStdout": not getattr(args, "detach", False),
        "AttachStderr": not getattr(args, "detach", False),
        "Labels": _labels(args.label) or None,
        "Hostname": args.hostname or "",
        "HostConfig": {k: v for k, v in host.items() if v is not None},
    }
    if exposed:
        body["ExposedPorts"] = exposed
    if args.network_alias:
        network = args.network or "bridge"
        if network in ("bridge", "default", "host", "none") or network.startswith("container:"):
            raise VerbError(
                "network-scoped aliases are only supported for user-defined networks", 125
            )
        body["NetworkingConfig"] = {
            "EndpointsConfig": {network: {"Aliases": list(args.network_alias)}}
        }
    if args.stop_signal:
        body["StopSignal"] = args.stop_signal
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint] if args.entrypoint else [""]
    if args.tty and sys.stdout.isatty():
        size = term.terminal_size(sys.stdout.fileno())
        if size:
            body["HostConfig"]["ConsoleSize"] = list(size)
    return body


def _exit_code_for(message: str) -> int:
    """docker's mapping of a failed start to an exit code."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


async def _pull(docker: aiodocker.Docker, image: str) -> None:
    name, tag = split_ref(image)
    if tag is None and "@" not in name:
        tag = "latest"
    printer = ProgressPrinter(sys.stderr)
    auth_name, auth = await dockerconfig.request_auth(name)
    async for msg in docker.images.pull(auth_name, tag=tag, auth=auth, stream=True):
        if "error" in msg or "errorDetail" in msg:
            failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
            raise VerbError(f"docker: Error response from daemon: {failed}", 125)
        printer.feed(msg)


async def _create(docker: aiodocker.Docker, args: argparse.Namespace) -> str:
    body = create_body(args)
    params = {"name": args.name} if args.name else None
    try:
        found = await docker._query_json(
            "containers/create", method="POST", params=params, data=json.dumps(body)
        )
    except aiodocker.DockerError as err:
        if err.status != 404 or "No such image" not in err.message:
            raise VerbError(f"docker: Error response from daemon: {err.message}", 125) from None
        print(f"Unable to find image '{args.image}' locally", file=sys.stderr)
        await _pull(docker, args.image)
        try:
            found = await docker._query_json(
                "containers/create", method="POST", params=params, data=json.dumps(body)
            )
        except aiodocker.DockerError as err2:
            raise VerbError(f"docker: Error response from daemon: {err2.message}", 125) from None
    for warning in found.get("Warnings") or []:
        print(f"WARNING: {warning}", file=sys.stderr)
    return str(found["Id"])


async def _register_wait(docker: aiodocker.Docker, cid: str, condition: str) -> Any:
    """POST /wait now (the engine answers headers at once); read the body later."""
    return await docker._do_query(
        f"containers/{cid}/wait",
        method="POST",
        params={"condition": condition},
        timeout=_NO_TIMEOUT,
    )


async def _wait_result(resp: Any) -> int:
    try:
        data = json.loads(await resp.read())
    finally:
        resp.release()
    error = (data.get("Error") or {}).get("Message")
    if error:
        print(f"docker: {error}", file=sys.stderr)
    return int(data.get("StatusCode", 125))


async def _post(docker: aiodocker.Docker, path: str, params: dict[str, Any] | None = None) -> None:
    """A POST whose answer has no body worth reading (204/304)."""
    async with docker._query(path, method="POST", params=params, timeout=_NO_TIMEOUT):
        pass


async def _start_or_fail(docker: aiodocker.Docker, cid: str) -> None:
    try:
        await _post(docker, f"containers/{cid}/start")
    except aiodocker.DockerError as err:
        raise VerbError(
            f"docker: Error response from daemon: {err.message}", _exit_code_for(err.message)
        ) from None


async def _attached_session(
    docker: aiodocker.Docker,
    stream: Any,
    *,
    stdin: bool,
    tty: bool,
    detach_keys: str | None,
    resize: Callable[[int, int], Any] | None,
) -> bool:
    """Run an attached session; True when the user detached."""
    keys = term.parse_detach_keys(detach_keys) if stdin and tty else None
    with contextlib.ExitStack() as stack:
        if tty and stdin and sys.stdin.isatty():
            stack.enter_context(term.raw_terminal(sys.stdin.fileno()))
        async with contextlib.AsyncExitStack() as astack:
            if tty and resize is not None and sys.stdout.isatty():
                await astack.enter_async_context(term.watch_resize(resize, sys.stdout.fileno()))
            return await term.pump_session(stream, stdin=stdin, detach_keys=keys)


def _parse_detach_keys(text: str | None) -> str | None:
    if text:
        try:
            term.parse_detach_keys(text)
        except term.DetachKeyError as err:
            raise VerbError(str(err), 125) from None
    return text


# -- verbs ------------------------------------------------------------------------------------


async def run(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    detach_keys = _parse_detach_keys(args.detach_keys)
    cid = await _create(docker, args)
    container = docker.containers.container(cid)
    if args.detach:
        await _start_or_fail(docker, cid)
        print(cid)
        return 0
    stream = container.attach(
        stdin=args.interactive,
        stdout=True,
        stderr=True,
        detach_keys=detach_keys,
    )
    async with stream:
        waiter = await _register_wait(docker, cid, "removed" if args.rm else "next-exit")
        try:
            await _start_or_fail(docker, cid)
        except VerbError:
            waiter.close()
            raise

        async def resize(rows: int, cols: int) -> None:
            await container.resize(h=rows, w=cols)

        with contextlib.ExitStack() as proxy:
            if not args.tty:  # docker's --sig-proxy: ctrl-c and SIGTERM go to the container
                proxy.enter_context(_signal_proxy(docker, cid))
            detached = await _attached_session(
                docker,
                stream,
                stdin=args.interactive,
                tty=args.tty,
                detach_keys=detach_keys,
                resize=resize,
            )
    if detached:
        waiter.close()
        print(file=sys.stderr)
        return 0
    return await _wait_result(waiter)


@contextlib.contextmanager
def _signal_proxy(docker: aiodocker.Docker, cid: str) -> Iterator[None]:
    """Forward SIGINT and SIGTERM received by the CLI to the container."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def forward(sig: signal.Signals) -> None:
        coro = _post(docker, f"containers/{cid}/kill", {"signal": str(int(sig))})
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(lambda t: (tasks.discard(t), t.exception()))

    proxied = (signal.SIGINT, signal.SIGTERM)
    for sig in proxied:
        loop.add_signal_handler(sig, forward, sig)
    try:
        yield
    finally:
        for sig in proxied:
            loop.remove_signal_handler(sig)


async def create(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    print(await _create(docker, args))
    return 0


async def _each(
    names: list[str], action: Callable[[str], Any], *, echo: bool = True, prefix: str = ""
) -> int:
    code = 0
    for name in names:
        try:
            await action(name)
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {prefix}{err.message}", file=sys.stderr)
            code = 1
            continue
        if echo:
            print(name)
    return code


async def start(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    if not args.attach:
        return await _each(
            args.containers,
            lambda n: _post(docker, f"containers/{n}/start"),
        )
    if len(args.containers) != 1:
        raise VerbError("you cannot start and attach multiple containers at once", 1)
    name = args.containers[0]
    container = docker.containers.container(name)
    info = await container.show()
    tty = bool(info["Config"].get("Tty"))
    interactive = args.interactive and bool(info["Config"].get("OpenStdin"))
    stream = container.attach(stdin=interactive, stdout=True, stderr=True)
    async with stream:
        waiter = await _register_wait(docker, name, "next-exit")
        await _start_or_fail(docker, name)
        detached = await _attached_session(
            docker,
            stream,
            stdin=interactive,
            tty=tty,
            detach_keys=None,
            resize=lambda h, w: container.resize(h=h, w=w),
        )
    if detached:
        waiter.close()
        return 0
    return await _wait_result(waiter)


async def stop(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.time is not None:
        params["t"] = args.time
    if args.signal:
        params["signal"] = args.signal

    async def one(name: str) -> None:
        async with docker._query(
            f"containers/{name}/stop", method="POST", params=params, timeout=_NO_TIMEOUT
        ):
            pass

    return await _each(args.containers, one)


async def restart(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params = {"t": args.time} if args.time is not None else None

    async def one(name: str) -> None:
        async with docker._query(
            f"containers/{name}/restart", method="POST", params=params, timeout=_NO_TIMEOUT
        ):
            pass

    return await _each(args.containers, one)


async def kill(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params = {"signal": args.signal} if args.signal else None

    async def one(name: str) -> None:
        async with docker._query(f"containers/{name}/kill", method="POST", params=params):
            pass

    return await _each(args.containers, one)


async def pause(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    return await _each(args.containers, lambda n: docker.containers.container(n).pause())


async def unpause(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    return await _each(args.containers, lambda n: docker.containers.container(n).unpause())


async def rm(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params = {"force": int(args.force), "v": int(args.volumes)}

    async def one(name: str) -> None:
        async with docker._query(f"containers/{name}", method="DELETE", params=params):
            pass

    return await _each(args.containers, one)


async def rename(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    await docker.containers.container(args.container).rename(args.new_name)
    return 0


async def wait(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    code = 0
    for name in args.containers:
        try:
            resp = await _register_wait(docker, name, "not-running")
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
            continue
        print(await _wait_result(resp))
    return code


def _status(item: dict[str, Any]) -> str:
    return str(item.get("Status") or item.get("State") or "")


def _command(item: dict[str, Any], trunc: bool) -> str:
    cmd = str(item.get("Command") or "")
    if trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return json.dumps(cmd, ensure_ascii=False)


async def ps(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    filters: dict[str, list[str]] = {}
    for f in args.filter or []:
        key, eq, value = f.partition("=")
        if not eq:
            raise VerbError(f"bad format of filter {f!r} (expected name=value)", 1)
        filters.setdefault(key, []).append(value)
    params: dict[str, Any] = {"all": int(args.all)}
    if filters:
        params["filters"] = json.dumps(filters)
    if args.last is not None:
        params["limit"] = args.last
    items = await docker._query_json("containers/json", params=params)
    if args.quiet:
        for item in items:
            print(item["Id"] if args.no_trunc else short_id(item["Id"]))
        return 0
    now = time.time()
    rows = []
    for item in items:
        names = ",".join(n.lstrip("/") for n in item.get("Names") or [])
        rows.append(
            [
                item["Id"] if args.no_trunc else short_id(item["Id"]),
                str(item.get("Image") or ""),
                _command(item, not args.no_trunc),
                human_age(item.get("Created"), now),
                _status(item),
                _ports(item),
                names,
            ]
        )
    print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows))
    return 0


def _ports(item: dict[str, Any]) -> str:
    out = []
    for p in item.get("Ports") or []:
        if p.get("PublicPort"):
            out.append(
                f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
            )
        else:
            out.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(out)


async def logs(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    container = docker.containers.container(args.container)
    info = await container.show()
    tty = bool(info["Config"].get("Tty"))
    params: dict[str, Any] = {
        "stdout": 1,
        "stderr": 1,
        "follow": int(args.follow),
        "timestamps": int(args.timestamps),
        "tail": args.tail or "all",
    }
    if args.since:
        params["since"] = args.since
    if args.until:
        params["until"] = args.until
    async with docker._query(
        f"containers/{args.container}/logs", params=params, timeout=_NO_TIMEOUT
    ) as resp:
        await _copy_log_stream(resp.content, tty)
    return 0


async def _copy_log_stream(content: aiohttp.StreamReader, tty: bool) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    if tty:
        async for chunk in content.iter_any():
            out.write(chunk)
            out.flush()
        return
    while True:
        try:
            header = await content.readexactly(8)
        except asyncio.IncompleteReadError:
            return
        size = int.from_bytes(header[4:8], "big")
        data = await content.readexactly(size) if size else b""
        target = err if header[0] == 2 else out
        target.write(data)
        target.flush()


async def exec_(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    detach_keys = _parse_detach_keys(args.detach_keys)
    body: dict[str, Any] = {
        "Cmd": [args.command, *args.args],
        "AttachStdin": args.interactive and not args.detach,
        "AttachStdout": not args.detach,
        "AttachStderr": not args.detach,
        "Tty": args.tty,
        "Env": [_env_entry(e) for e in args.env or []] or None,
        "User": args.user or "",
        "WorkingDir": args.workdir or "",
        "Privileged": args.privileged,
    }
    if detach_keys:
        body["DetachKeys"] = detach_keys
    try:
        created = await docker._query_json(
            f"containers/{args.container}/exec", method="POST", data=json.dumps(body)
        )
    except aiodocker.DockerError as err:
        raise VerbError(f"Error response from daemon: {err.message}", 1) from None
    execution = docker.containers.exec(created["Id"])
    if args.detach:
        await execution.start(detach=True)
        return 0
    try:
        stream = execution.start(detach=False)
        async with stream:

            async def resize(rows: int, cols: int) -> None:
                await execution.resize(h=rows, w=cols)

            detached = await _attached_session(
                docker,
                stream,
                stdin=args.interactive,
                tty=args.tty,
                detach_keys=detach_keys,
                resize=resize,
            )
    except aiodocker.DockerError as err:
        raise VerbError(
            f"Error response from daemon: {err.message}", _exit_code_for(err.message)
        ) from None
    if detached:
        return 0
    info = await execution.inspect()
    code = info.get("ExitCode")
    return 126 if code is None else int(code)


async def attach(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    detach_keys = _parse_detach_keys(args.detach_keys)
    container = docker.containers.container(args.container)
    info = await container.show()
    if not info["State"].get("Running"):
        raise VerbError("You cannot attach to a stopped container, start it first", 1)
    tty = bool(info["Config"].get("Tty"))
    interactive = not args.no_stdin and bool(info["Config"].get("OpenStdin"))
    stream = container.attach(stdin=interactive, stdout=True, stderr=True, detach_keys=detach_keys)
    async with stream:
        waiter = await _register_wait(docker, args.container, "not-running")
        detached = await _attached_session(
            docker,
            stream,
            stdin=interactive,
            tty=tty,
            detach_keys=detach_keys,
            resize=lambda h, w: container.resize(h=h, w=w),
        )
    if detached:
        waiter.close()
        return 0
    return await _wait_result(waiter)


async def top(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params = {"ps_args": " ".join(args.ps_args)} if args.ps_args else None
    found = await docker._query_json(f"containers/{args.container}/top", params=params)
    print(table(found.get("Titles") or [], found.get("Processes") or []))
    return 0


def _cpu_percent(stats: dict[str, Any]) -> float:
    cpu = stats.get("cpu_stats") or {}
    pre = stats.get("precpu_stats") or {}
    delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or 1
    if delta > 0 and system > 0:
        return delta / system * cpus * 100.0
    return 0.0


async def stats(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    names = args.containers
    if not names:
        names = [c["Id"] for c in await docker._query_json("containers/json")]
    rows = []
    for name in names:
        try:
            s = await docker._query_json(f"containers/{name}/stats", params={"stream": 0})
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            return 1
        mem = s.get("memory_stats") or {}
        usage, limit = int(mem.get("usage") or 0), int(mem.get("limit") or 0)
        pids = (s.get("pids_stats") or {}).get("current", 0)
        rows.append(
            [
                short_id(str(s.get("id") or name)),
                str(s.get("name") or name).lstrip("/"),
                f"{_cpu_percent(s):.2f}%",
                f"{human_size(usage)} / {human_size(limit)}",
                f"{(usage / limit * 100.0) if limit else 0.0:.2f}%",
                str(pids),
            ]
        )
    print(table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"], rows))
    return 0


async def commit(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"container": args.container, "pause": int(not args.no_pause)}
    if args.repository:
        repo, tag = split_ref(args.repository)
        params["repo"] = repo
        if tag:
            params["tag"] = tag
    if args.message:
        params["comment"] = args.message
    if args.author:
        params["author"] = args.author
    path = "commit"
    if args.change:  # repeated ``changes`` parameters, which a params dict cannot carry
        path += "?" + urllib.parse.urlencode([("changes", c) for c in args.change])
    found = await docker._query_json(path, method="POST", params=params, data="{}")
    print(found["Id"])
    return 0


async def export(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    if not args.output and sys.stdout.isatty():
        raise VerbError("cowardly refusing to write a tar to a terminal: use -o FILE", 1)
    target = args.output
    tmp = f"{target}.part" if target else None
    async with docker._query(f"containers/{args.container}/export", timeout=_NO_TIMEOUT) as resp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if tmp else 1
        try:
            async for chunk in resp.content.iter_chunked(1 << 16):
                term._write(fd, chunk)
        except BaseException:
            if tmp:
                os.close(fd)
                os.unlink(tmp)
            raise
        if tmp:
            os.close(fd)
            os.replace(tmp, target)
    return 0


# -- volumes ---------------------------------------------------------------------------------


async def volume_create(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    body = {"Name": args.name or "", "Labels": _labels(args.label), "Driver": args.driver}
    found = await docker._query_json("volumes/create", method="POST", data=json.dumps(body))
    print(found["Name"])
    return 0


async def volume_ls(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    filters: dict[str, list[str]] = {}
    for f in args.filter or []:
        key, _, value = f.partition("=")
        filters.setdefault(key, []).append(value)
    params = {"filters": json.dumps(filters)} if filters else None
    found = await docker._query_json("volumes", params=params)
    vols = found.get("Volumes") or []
    if args.quiet:
        for v in vols:
            print(v["Name"])
        return 0
    print(table(["DRIVER", "VOLUME NAME"], [[v["Driver"], v["Name"]] for v in vols]))
    return 0


async def volume_rm(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    async def one(name: str) -> None:
        async with docker._query(
            f"volumes/{name}", method="DELETE", params={"force": int(args.force)}
        ):
            pass

    return await _each(args.volumes, one)


async def volume_inspect(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    found = []
    code = 0
    for name in args.volumes:
        try:
            found.append(await docker._query_json(f"volumes/{name}"))
        except aiodocker.DockerError as err:
            print(f"Error response from daemon: {err.message}", file=sys.stderr)
            code = 1
    print(json.dumps(found, indent=4))
    return code


async def volume_prune(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    params = {"filters": json.dumps({"all": ["true"]})} if args.all else None
    found = await docker._query_json("volumes/prune", method="POST", params=params)
    deleted = found.get("VolumesDeleted") or []
    if deleted:
        print("Deleted Volumes:")
        for name in deleted:
            print(name)
        print()
    print(f"Total reclaimed space: {human_size(found.get('SpaceReclaimed') or 0)}")
    return 0


# -- parser ------------------------------------------------------------------------------------


def _container_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", metavar="KEY[=VALUE]")
    p.add_argument("--env-file", action="append", metavar="FILE")
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("-v", "--volume", action="append", metavar="SRC:DST[:ro]")
    p.add_argument("--tmpfs", action="append", metavar="PATH[:OPTS]")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--cap-add", action="append")
    p.add_argument("--cap-drop", action="append")
    p.add_argument("--security-opt", action="append")
    p.add_argument("-m", "--memory")
    p.add_argument("--cpus")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--ulimit", action="append", metavar="NAME=SOFT[:HARD]")
    p.add_argument("--init", action="store_true")
    p.add_argument("--stop-signal")
    p.add_argument("-l", "--label", action="append", metavar="KEY=VALUE")
    p.add_argument("--restart", metavar="POLICY")
    p.add_argument(
        "--network",
        "--net",
        metavar="NETWORK",
        help="bridge (default), none, host, container:NAME or a network's name",
    )
    p.add_argument("-p", "--publish", action="append", metavar="[IP:]HOST:CONTAINER[/PROTO]")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port")
    p.add_argument("--expose", action="append", metavar="PORT[/PROTO]")
    p.add_argument("--network-alias", action="append", metavar="ALIAS")
    p.add_argument("--add-host", action="append", metavar="HOST:IP")
    p.add_argument("--dns", action="append", metavar="IP")
    p.add_argument("--dns-search", action="append", metavar="DOMAIN")
    p.add_argument("--dns-option", action="append", metavar="OPTION")
    p.add_argument(
        "--log-opt", action="append", metavar="KEY=VALUE", help="json-file: max-size, max-file"
    )
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname")
    p.add_argument("--detach-keys")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def register(sub: Any, engine_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the container and volume verbs to the ``portside`` subparsers."""

    def verb(name: str, func: Any, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, **kw)
        p.set_defaults(func=func)
        return p

    def done(p: argparse.ArgumentParser) -> None:
        engine_options(p)

    p = verb("run", run, "create and start a container", add_help=False)
    p.add_argument("--help", action="help")
    p.add_argument("-d", "--detach", action="store_true")
    _container_flags(p)
    done(p)
    p = verb("create", create, "create a container", add_help=False)
    p.add_argument("--help", action="help")
    _container_flags(p)
    done(p)
    p = verb("start", start, "start containers")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("containers", nargs="+")
    done(p)
    for name, func, help_text in (
        ("stop", stop, "stop containers"),
        ("restart", restart, "restart containers"),
    ):
        p = verb(name, func, help_text)
        p.add_argument("-t", "--time", type=int)
        if name == "stop":
            p.add_argument("-s", "--signal")
        p.add_argument("containers", nargs="+")
        done(p)
    p = verb("kill", kill, "kill containers")
    p.add_argument("-s", "--signal")
    p.add_argument("containers", nargs="+")
    done(p)
    for name, func, help_text in (
        ("pause", pause, "pause containers"),
        ("unpause", unpause, "unpause containers"),
        ("wait", wait, "wait for containers to stop; print their exit codes"),
    ):
        p = verb(name, func, help_text)
        p.add_argument("containers", nargs="+")
        done(p)
    p = verb("rm", rm, "remove containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("containers", nargs="+")
    done(p)
    p = verb("rename", rename, "rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    done(p)
    p = verb("ps", ps, "list containers")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-n", "--last", type=int)
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE")
    done(p)
    p = verb("logs", logs, "show a container's logs")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("container")
    done(p)
    p = verb("exec", exec_, "run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append")
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    p.add_argument("command")
    p.add_argument("args", nargs=argparse.REMAINDER)
    done(p)
    p = verb("attach", attach, "attach to a running container")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    done(p)
    p = verb("top", top, "show a container's processes")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    done(p)
    p = verb("stats", stats, "show resource usage (one sample)")
    p.add_argument("--no-stream", action="store_true", help="the default: one sample")
    p.add_argument("containers", nargs="*")
    done(p)
    p = verb("commit", commit, "create an image from a container's changes")
    p.add_argument("-m", "--message")
    p.add_argument("-a", "--author")
    p.add_argument("--change", action="append")
    p.add_argument("-p", "--pause", action="store_true", default=True)
    p.add_argument("--no-pause", action="store_true")
    p.add_argument("container")
    p.add_argument("repository", nargs="?")
    done(p)
    p = verb("export", export, "write a container's file system as a tar archive")
    p.add_argument("-o", "--output")
    p.add_argument("container")
    done(p)

    vol = sub.add_parser("volume", help="manage volumes")
    vsub = vol.add_subparsers(dest="volume_verb", metavar="COMMAND", required=True)
    p = vsub.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?")
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("--label", action="append")
    p.set_defaults(func=volume_create)
    done(p)
    p = vsub.add_parser("ls", help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append")
    p.set_defaults(func=volume_ls)
    done(p)
    p = vsub.add_parser("rm", help="remove volumes")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("volumes", nargs="+")
    p.set_defaults(func=volume_rm)
    done(p)
    p = vsub.add_parser("inspect", help="show volumes")
    p.add_argument("volumes", nargs="+")
    p.set_defaults(func=volume_inspect)
    done(p)
    p = vsub.add_parser("prune", help="remove unused volumes")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=volume_prune)
    done(p)
