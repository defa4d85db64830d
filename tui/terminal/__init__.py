"""The attached terminal: a pyte-based core (no Textual), sessions, and the Textual widget.

The Textual-free parts are `cells`, `sgr`, `screen`, `reflow`, `parser`, `core`, `keys`,
`mouse`, `pty`, `session`, `docker_session`, `terminal` and `errors`; only `render`,
`widget` and `tabs` import Textual.
Nothing is imported here so that `import tui.terminal.core` stays light.
"""
