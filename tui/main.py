"""The ``portside`` command: the dashboard, ``serve``, and docker-like verbs.

``portside [--host URL | --context NAME] [--theme NAME]`` opens the dashboard;
``portside serve ...`` runs the engine daemon; ``portside VERB ...`` runs one verb against
the selected engine (the embedded one by default) through the Docker Engine API.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tui import cmdproto
from tui.client import EngineOptions, EngineSelectionError, connect

if TYPE_CHECKING:
    import aiodocker

Verb = Callable[["aiodocker.Docker", argparse.Namespace], Awaitable[int]]

_ENGINE_FLAGS = ("host", "context", "root", "insecure_registry", "registry_mirror")


def _engine_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Engine selection flags; on verbs they default to SUPPRESS so global values stand."""
    default = None if top else argparse.SUPPRESS
    g = parser.add_argument_group("engine")
    g.add_argument("-H", "--host", default=default, help="engine URL (unix:///path or tcp://)")
    g.add_argument("-c", "--context", default=default, help="a docker context name")
    g.add_argument("--root", default=default, help="embedded engine state directory")
    g.add_argument(
        "--insecure-registry",
        action="append",
        default=[] if top else argparse.SUPPRESS,
        metavar="HOST[:PORT]",
        help="allow plain http / unverified TLS for this registry (repeatable)",
    )
    g.add_argument(
        "--registry-mirror",
        action="append",
        default=[] if top else argparse.SUPPRESS,
        metavar="URL",
        help="mirror for docker.io pulls (repeatable)",
    )


def build_parser(*, verbs: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``verbs=False`` gives only the dashboard's options (the
    verbs' modules are then never imported, which keeps the dashboard's start quick)."""
    parser = argparse.ArgumentParser(
        prog="portside",
        description="Keyboard-driven dashboard and engine for containers.",
    )
    parser.add_argument("--theme", help="dashboard theme name")
    parser.add_argument("-D", "--debug", action="store_true", help="debug logging")
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    _engine_options(parser, top=True)
    if not verbs:
        parser.set_defaults(verb=None)
        return parser
    from tui.cli import build as build_verbs
    from tui.cli import containers as container_verbs
    from tui.cli import cp as cp_verbs
    from tui.cli import images as image_verbs
    from tui.cli import images_archive as archive_verbs
    from tui.cli import login as login_verbs
    from tui.cli import networks as network_verbs
    from tui.cli import registry as registry_verbs
    from tui.cli import scan as scan_verbs
    from tui.cli import system as system_verbs

    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    sub.add_parser("serve", help="run the engine daemon (Docker Engine API)", add_help=False)

    p = sub.add_parser("version", help="show the client's and the engine's versions")
    p.add_argument("-f", "--format", choices=["json"], help="json: both parts as one object")
    _engine_options(p, top=False)
    p.set_defaults(func=system_verbs.version)

    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("ref")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    p.add_argument("--platform", default="", help="os/arch[/variant]")
    _engine_options(p, top=False)
    p.set_defaults(func=image_verbs.pull)

    p = sub.add_parser("images", help="list images")
    p.add_argument("repository", nargs="?")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("--digests", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", help="key=value (dangling, reference)")
    _engine_options(p, top=False)
    p.set_defaults(func=image_verbs.images)

    p = sub.add_parser("tag", help="create a tag TARGET that refers to SOURCE")
    p.add_argument("source")
    p.add_argument("target")
    _engine_options(p, top=False)
    p.set_defaults(func=image_verbs.tag)

    p = sub.add_parser("rmi", help="remove images")
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--no-prune", action="store_true")
    _engine_options(p, top=False)
    p.set_defaults(func=image_verbs.rmi)

    p = sub.add_parser("inspect", help="show low-level information on images")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format", help="Go-template subset: {{.Id}} {{json .Config}}")
    _engine_options(p, top=False)
    p.set_defaults(func=image_verbs.inspect)

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("ref")
    p.add_argument("-a", "--all-tags", action="store_true", help="push every local tag")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the pushed name")
    _engine_options(p, top=False)
    p.set_defaults(func=registry_verbs.push)

    p = sub.add_parser("login", help="log in to a registry (credentials stored like docker's)")
    p.add_argument("server", nargs="?", help="registry HOST[:PORT] (default: Docker Hub)")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password", help="insecure: prefer --password-stdin")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _engine_options(p, top=False)
    p.set_defaults(func=login_verbs.login)

    p = sub.add_parser("logout", help="remove the stored credentials of a registry")
    p.add_argument("server", nargs="?", help="registry HOST[:PORT] (default: Docker Hub)")
    _engine_options(p, top=False)  # accepted for symmetry; logout needs no engine
    p.set_defaults(func=login_verbs.logout, offline=True)

    p = sub.add_parser("scan", help="scan a local image: packages, risky settings, CVEs")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="the whole report as JSON")
    p.add_argument("--no-external", action="store_true", help="do not run trivy or grype")
    _engine_options(p, top=False)
    p.set_defaults(func=scan_verbs.scan)

    reg = sub.add_parser("registry", help="browse and manage registries (portside engines)")
    rsub = reg.add_subparsers(dest="registry_verb", metavar="COMMAND", required=True)
    p = rsub.add_parser("ls", help="list the repositories of a registry")
    p.add_argument("registry", metavar="HOST[:PORT]")
    p.add_argument("--json", action="store_true")
    _engine_options(p, top=False)
    p.set_defaults(func=registry_verbs.registry_ls)
    p = rsub.add_parser("tags", help="list the tags of a repository")
    p.add_argument("repository", metavar="[HOST/]REPOSITORY")
    p.add_argument("--json", action="store_true")
    _engine_options(p, top=False)
    p.set_defaults(func=registry_verbs.registry_tags)
    p = rsub.add_parser("inspect", help="show what a reference points at in its registry")
    p.add_argument("ref", metavar="NAME[:TAG|@DIGEST]")
    _engine_options(p, top=False)
    p.set_defaults(func=registry_verbs.registry_inspect)
    p = rsub.add_parser("rm", help="delete tags or manifests from their registry")
    p.add_argument("refs", nargs="+", metavar="NAME:TAG|NAME@DIGEST")
    _engine_options(p, top=False)
    p.set_defaults(func=registry_verbs.registry_rm)
    build_verbs.register(sub, lambda p: _engine_options(p, top=False))
    container_verbs.register(sub, lambda p: _engine_options(p, top=False))
    cp_verbs.register(sub, lambda p: _engine_options(p, top=False))
    network_verbs.register(sub, lambda p: _engine_options(p, top=False))
    archive_verbs.register(sub, lambda p: _engine_options(p, top=False))
    return parser


def _options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        host=args.host,
        context=args.context,
        root=args.root or os.environ.get("PORTSIDE_ROOT") or None,
        insecure_registries=list(args.insecure_registry or []),
        registry_mirrors=list(args.registry_mirror or []),
    )


async def _run_verb(func: Verb, args: argparse.Namespace) -> int:
    if getattr(args, "offline", False):  # verbs that need no engine (logout)
        return await func(None, args)  # type: ignore[arg-type]
    async with connect(_options(args)) as (docker, _name):
        return await func(docker, args)


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``portside ARGV``; ``parser`` is a ready ``build_parser()`` (the command server
    builds it once)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        from engine.embedded import serve_main

        return serve_main(argv[1:])
    if parser is None:
        dashboard = cmdproto.verb_of(argv) is None and not {"-h", "--help"} & set(argv)
        parser = build_parser(verbs=not dashboard)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.version:
        from importlib.metadata import version

        print(f"portside {version('portside')}")
        return 0
    if args.host and args.context:
        parser.error("--host and --context cannot be used together")
    if args.verb is None:
        from tui.launch import open_dashboard

        return open_dashboard(_options(args), theme=args.theme)
    from aiodocker import DockerError

    from tui.cli.dockerconfig import CredentialError
    from tui.cli.images import VerbError

    try:
        return asyncio.run(_run_verb(args.func, args))
    except VerbError as err:
        print(err, file=sys.stderr)
        return err.code
    except CredentialError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except DockerError as err:
        print(f"Error response from daemon: {err.message}", file=sys.stderr)
        return 1
    except EngineSelectionError as err:
        print(f"portside: {err}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        print(f"portside: cannot reach the engine: {err}", file=sys.stderr)
        return 125
    except Exception as err:
        # Engine errors (bad config, unusable root) raised while starting the embedded
        # engine carry a one-line message and an HTTP-like status; anything else is a bug.
        if isinstance(getattr(err, "status", None), int) and hasattr(err, "message"):
            print(f"portside: {err}", file=sys.stderr)
            return 125
        raise


if __name__ == "__main__":
    sys.exit(main())
