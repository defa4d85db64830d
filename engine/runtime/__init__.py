"""Running containers: OCI spec generation, root filesystems, the crun/runc driver, the
per-container monitor process and its engine-side client, logs, stats and commits.

``engine.containers.ContainerService`` ties these together; nothing here speaks HTTP. The
monitor (``monitor.py``) runs as its own small process and imports only the standard library.
"""
