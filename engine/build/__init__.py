"""Building images from Dockerfiles: the front end (parser, expansion, context, stages).

``parser`` reads the lexical structure, ``expand`` does BuildKit-style word expansion,
``instructions`` types and validates every instruction, ``dockerignore`` and ``context``
prepare the filtered build context, and ``graph`` orders stages for ``--target``.
"""
