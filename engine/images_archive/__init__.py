"""Image tarballs: ``docker save``/``load`` archives and ``docker import`` of a filesystem.

- ``layout``: names and JSON documents of the two archive layouts (docker's legacy
  ``manifest.json`` layout and the OCI image layout), written side by side like docker 25.
- ``save``: streams the archive of one or more local images.
- ``spool``: receives an upload into a private work directory and indexes a tar's files.
- ``load``: reads an archive of either layout, verifies every blob, and records the images.
- ``record``: shared ingest steps (blob into the store, layer onto a snapshot, image record).
- ``fsimport``: one filesystem tarball becomes a one-layer image.
"""
