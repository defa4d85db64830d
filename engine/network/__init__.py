"""Container networking: the bridge driver, networks, published ports, hosts/resolv.conf content.

Entry point for the rest of the engine is ``engine.network.networks.NetworkService``; the
container runtime calls its ``attach``/``detach`` per container and network.
"""
