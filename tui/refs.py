"""Splitting image references as the Docker API takes them (``fromImage`` + ``tag``).

Light on purpose (built-in modules only): the dashboard's start path and the verbs share it.
"""

from __future__ import annotations


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name:tag`` -> (name, tag); digests and host ports stay in the name."""
    if "@" in ref:
        return ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None
