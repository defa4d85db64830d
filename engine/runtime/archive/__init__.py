"""``docker cp`` for the embedded engine: stat, read and write paths inside a container.

- ``paths``: docker's path rules (trailing ``/`` and ``/.``), Go ``os.FileMode`` bits and the
  ``X-Docker-Container-Path-Stat`` header.
- ``helper``: the helper process that does the file work; it builds the container's view (its
  root file system plus its volumes and bind mounts, in a private mount namespace), chroots
  into it and only then looks at paths, so nothing the container controls can lead outside.
- ``extract``: applying an uploaded tar inside that chroot with dockerd's rules.
- ``client``: the asyncio side that starts the helper and streams through it.
"""
