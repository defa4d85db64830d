"""``portside login`` and ``portside logout``, behaving like ``docker login`` / ``logout``.

``login`` asks the engine to verify the credentials (``POST /auth``, so the engine's TLS
trust and insecure-registry settings apply), then stores them itself in the user's docker
config (``tui.cli.dockerconfig``): the engine never keeps them. Without ``-u``/``-p`` it
first tries the credentials already stored. ``logout`` only touches the docker config.
Passwords are read from ``--password-stdin`` (or a prompt on a terminal) and never echoed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

import aiodocker

from tui.cli import dockerconfig
from tui.cli.dockerconfig import Credentials
from tui.cli.images import VerbError

LOGIN_SUCCEEDED = "Login Succeeded"


async def verify(docker: aiodocker.Docker, host: str, creds: Credentials) -> str:
    """``POST /auth`` through the engine; the identity token it may hand back ("" if none)."""
    body = creds.auth_config(host)
    reply = await docker._query_json(
        "auth",
        "POST",
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    token = reply.get("IdentityToken") if isinstance(reply, dict) else None
    return token if isinstance(token, str) else ""


def _read_stdin() -> str:
    text = sys.stdin.read()
    return text.removesuffix("\n").removesuffix("\r")


def _ask(prompt: str, *, secret: bool) -> str:
    if secret:
        return getpass.getpass(prompt)
    print(prompt, end="", flush=True)
    return sys.stdin.readline().strip()


async def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    username = (args.username or "").strip()
    password = args.password or ""
    if args.password and args.password_stdin:
        raise VerbError("--password and --password-stdin are mutually exclusive")
    if args.password_stdin:
        if not username:
            raise VerbError("Must provide --username with --password-stdin")
        password = await asyncio.to_thread(_read_stdin)
    elif args.password:
        print(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
            file=sys.stderr,
        )
    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise VerbError("Error: Cannot perform an interactive login from a non TTY device")
        username = (await asyncio.to_thread(_ask, "Username: ", secret=False)).strip()
        if not username:
            raise VerbError("Error: Non-null Username Required")
    if not password:
        if not interactive:
            raise VerbError("Error: Cannot perform an interactive login from a non TTY device")
        password = await asyncio.to_thread(_ask, "Password: ", secret=True)
        if not password:
            raise VerbError("Error: Password Required")
    return username, password


async def login(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    host = dockerconfig.registry_host(args.server)
    if not (args.username or args.password or args.password_stdin):
        stored = await dockerconfig.load(host)
        if stored is not None:
            print("Authenticating with existing credentials...")
            try:
                await verify(docker, host, stored)
            except aiodocker.DockerError as err:
                print(f"Login did not succeed, error: {err.message}", file=sys.stderr)
            else:
                print(LOGIN_SUCCEEDED)
                return 0
    username, password = await _credentials(args)
    creds = Credentials(username=username, password=password)
    token = await verify(docker, host, creds)
    if token:
        creds = Credentials(username=username, identity_token=token)
    stored_in = await dockerconfig.store(host, creds)
    if stored_in is not None:
        print(
            f"WARNING! Your password will be stored unencrypted in {stored_in}.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/engine/reference/commandline/login/#credential-stores",
            file=sys.stderr,
        )
    print(LOGIN_SUCCEEDED)
    return 0


async def logout(_docker: aiodocker.Docker | None, args: argparse.Namespace) -> int:
    host = dockerconfig.registry_host(args.server)
    removed = await dockerconfig.erase(host)
    if removed:
        print(f"Removing login credentials for {dockerconfig.config_key(host)}")
    else:
        print(f"Not logged in to {dockerconfig.config_key(host)}")
    return 0
