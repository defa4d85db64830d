"""Registry client: endpoints and TLS (hosts), authentication (auth, credentials), pulls (client).

The pull pipeline uses ``RegistryClient``; the API layer and CLI use ``AuthConfig`` and the
Docker config.json loaders.
"""

from engine.registry.client import BlobWriter, RegistryClient
from engine.registry.credentials import (
    AuthConfig,
    load_docker_credentials,
    load_docker_credentials_async,
)

__all__ = [
    "AuthConfig",
    "BlobWriter",
    "RegistryClient",
    "load_docker_credentials",
    "load_docker_credentials_async",
]
