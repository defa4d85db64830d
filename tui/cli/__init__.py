"""The docker-like command-line verbs of ``portside``, each a client of the Engine API."""
