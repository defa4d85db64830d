"""The one error type of the terminal package: a one-line message saying what to do."""


class TerminalError(Exception):
    """A session could not start or continue (bad command, engine refused, container gone)."""
