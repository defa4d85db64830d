"""``portside serve``: the engine as a daemon speaking the Docker Engine API.

Listens on a unix socket (0660 and group ``docker`` when that group exists, else 0600;
its directory is created 0711) and optionally on TCP, only with mutual TLS. Refuses to
start when another live engine owns the socket or the root (``<root>/portside.pid`` is
locked while the daemon runs); a stale socket is removed. SIGTERM or SIGINT stop it
cleanly: no new connections, open streams end, ``Engine.close()``, socket and pid file
removed. Logs go to stderr and never contain credentials.

Run it as ``portside serve [options]`` or ``python -m engine.daemon [options]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.config import EngineConfig, load_config
from engine.errors import Conflict, InvalidArgument, PortsideError
from engine.paths import default_socket

log = logging.getLogger("portside.daemon")

PID_FILE = "portside.pid"
DOCKER_GROUP = "docker"


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key, and the CA that client certificates must chain to."""

    cacert: Path
    cert: Path
    key: Path


class PidFile:
    """``<root>/portside.pid``, locked (flock) for as long as the daemon runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise Conflict(
                f"another portside serve (pid {owner}) is using root {self.path.parent}; "
                "stop it first or use another --root"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def socket_group() -> int | None:
    """The gid of the ``docker`` group, when it exists."""
    try:
        return grp.getgrnam(DOCKER_GROUP).gr_gid
    except KeyError:
        return None


async def serve(
    config: EngineConfig,
    socket_path: Path | str,
    *,
    tcp: tuple[str, int] | None = None,
    tls: TlsFiles | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the engine and its API until ``stop`` is set (default: SIGTERM or SIGINT)."""
    from engine.api.app import create_app
    from engine.api.server import ApiServer, claim_socket_path, server_ssl_context
    from engine.engine import Engine

    if tcp is not None and tls is None:
        raise InvalidArgument(
            "refusing to listen on TCP without mutual TLS: add --tlsverify --tlscacert FILE "
            "--tlscert FILE --tlskey FILE"
        )
    socket_path = Path(socket_path)
    ssl_context = None
    if tcp is not None and tls is not None:
        ssl_context = await asyncio.to_thread(server_ssl_context, tls.cacert, tls.cert, tls.key)
    pid_file = PidFile(config.root / PID_FILE)
    await asyncio.to_thread(pid_file.acquire)
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    try:
        await claim_socket_path(socket_path)
        if stop is None:
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        engine = await Engine.open(config)
        try:
            server = ApiServer(create_app(engine))
            await server.start()
            try:
                group = socket_group()
                mode = 0o660 if group is not None else 0o600
                url = await server.listen_unix(socket_path, mode=mode, group=group)
                log.info("API listening on %s (mode %o)", url, mode)
                if tcp is not None and ssl_context is not None:
                    tcp_url = await server.listen_tcp(tcp[0], tcp[1], ssl_context)
                    log.info("API listening on %s (mutual TLS)", tcp_url)
                log.info("engine ready (root %s, pid %d)", config.root, os.getpid())
                await stop.wait()
                log.info("shutting down")
            finally:
                await server.stop()
        finally:
            await engine.close()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(pid_file.release)
    log.info("engine stopped")


def _parse_tcp(value: str) -> tuple[str, int]:
    rest = value.removeprefix("tcp://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"invalid -H {value!r}: use tcp://HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portside serve",
        description="Run the portside engine as a daemon speaking the Docker Engine API.",
    )
    parser.add_argument("--root", help="directory for all engine state (default: PORTSIDE_ROOT)")
    parser.add_argument("--socket", help=f"unix socket to listen on (default {default_socket()})")
    parser.add_argument(
        "-H",
        "--host",
        action="append",
        default=[],
        metavar="ADDR",
        help="unix:///PATH or tcp://HOST:PORT (TCP requires --tlsverify)",
    )
    parser.add_argument("--runtime", help="OCI runtime: crun, runc or a path")
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="registry reachable over plain HTTP or with an unverified certificate",
    )
    parser.add_argument(
        "--registry-mirror", action="append", default=[], metavar="URL", help="docker.io mirror"
    )
    parser.add_argument("--config", type=Path, help="config file (default: PORTSIDE_CONFIG)")
    parser.add_argument(
        "--tlsverify", action="store_true", help="require client certificates on TCP"
    )
    parser.add_argument("--tlscacert", type=Path, help="CA that signs client certificates")
    parser.add_argument("--tlscert", type=Path, help="server certificate")
    parser.add_argument("--tlskey", type=Path, help="server key")
    parser.add_argument("-D", "--debug", action="store_true", help="log every request")
    return parser


def _listeners(args: argparse.Namespace) -> tuple[Path, tuple[str, int] | None, TlsFiles | None]:
    socket_path = Path(args.socket) if args.socket else None
    tcp: tuple[str, int] | None = None
    for host in args.host:
        if host.startswith("unix://"):
            if socket_path is not None:
                raise InvalidArgument("give one unix socket (--socket or -H unix://PATH)")
            socket_path = Path(host.removeprefix("unix://"))
        elif host.startswith("tcp://"):
            if tcp is not None:
                raise InvalidArgument("give at most one -H tcp://HOST:PORT")
            tcp = _parse_tcp(host)
        else:
            raise InvalidArgument(f"invalid -H {host!r}: use unix:///PATH or tcp://HOST:PORT")
    tls: TlsFiles | None = None
    tls_files = (args.tlscacert, args.tlscert, args.tlskey)
    if args.tlsverify or any(tls_files):
        if not all(tls_files):
            raise InvalidArgument("--tlsverify needs --tlscacert, --tlscert and --tlskey")
        if not args.tlsverify:
            raise InvalidArgument("TLS without --tlsverify is not supported: add --tlsverify")
        tls = TlsFiles(args.tlscacert, args.tlscert, args.tlskey)
        if tcp is None:
            raise InvalidArgument("--tlsverify applies to TCP: add -H tcp://HOST:PORT")
    if tcp is not None and tls is None:
        raise InvalidArgument(
            "refusing to listen on TCP without mutual TLS: add --tlsverify --tlscacert FILE "
            "--tlscert FILE --tlskey FILE"
        )
    return socket_path or default_socket(), tcp, tls


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``portside serve``; returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        socket_path, tcp, tls = _listeners(args)
        config = load_config(
            args.config,
            root=args.root,
            runtime=args.runtime,
            insecure_registries=args.insecure_registry,
            registry_mirrors=args.registry_mirror,
        )
        if config.daemon_credentials is None:
            config.daemon_credentials = False  # a shared daemon: callers bring their own
        asyncio.run(serve(config, socket_path, tcp=tcp, tls=tls))
    except PortsideError as err:
        log.error("%s", err.message)
        return 1
    except OSError as err:
        log.error("cannot start the engine: %s", err)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
