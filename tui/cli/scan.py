"""``portside scan IMAGE [--json]``: a local image's packages, risky settings and known
vulnerabilities, from the engine's scan endpoint (``/portside/v1/images/{name}/scan``)."""

from __future__ import annotations

import argparse
import json
from urllib.parse import quote

import aiodocker

from tui.cli.images import VerbError

_PATH = "portside/v1/images/{}/scan"


async def scan(docker: aiodocker.Docker, args: argparse.Namespace) -> int:
    path = _PATH.format(quote(args.image, safe="/:@"))
    params = {"external": "0"} if args.no_external else {}
    if args.json:
        report = await docker._query_json(path, "GET", params=params or None, versioned_api=False)
        print(json.dumps(report, indent=2))
        return 0
    async with docker._query(
        path, "GET", params={**params, "format": "text"}, versioned_api=False
    ) as resp:
        text = await resp.text()
    if not text:
        raise VerbError(f"Error: the engine sent an empty report for {args.image}")
    print(text, end="")
    return 0
