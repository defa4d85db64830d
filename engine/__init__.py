"""portside's embedded container engine: content store, registry client, images, runtime.

Nothing in this package imports Textual (rule 2 of DESIGN.md); services are plain async
Python and ``engine/api`` is a thin Docker Engine API layer over them.
"""
