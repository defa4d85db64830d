"""portside's user-facing side: the dashboard and the docker-like CLI verbs.

Everything here reaches engines only through the Docker Engine API (aiodocker); the one
thing it imports from ``engine/`` is ``engine.embedded``, which starts an in-process engine.
"""
