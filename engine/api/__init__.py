"""The Docker Engine API server: a thin aiohttp translation layer over the engine services.

One module per resource (system, images, containers, events, build); ``create_app`` wires
them with dockerd's routing, version checks and error shapes; ``server`` listens on unix
sockets and TCP with mutual TLS.
"""

from engine.api.app import create_app

__all__ = ["create_app"]
