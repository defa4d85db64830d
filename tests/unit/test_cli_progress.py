"""The CLI's rendering of Docker JSON progress: bars on a terminal, status lines otherwise."""

import io

from tui.cli.output import table
from tui.cli.progress import ProgressPrinter

STREAM = [
    {"status": "Pulling from test/busybox", "id": "1"},
    {"status": "Pulling fs layer", "id": "aaa"},
    {"status": "Pulling fs layer", "id": "bbb"},
    {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 500, "total": 1000}},
    {"status": "Downloading", "id": "aaa", "progressDetail": {"current": 1000, "total": 1000}},
    {"status": "Download complete", "id": "aaa"},
    {"status": "Pull complete", "id": "aaa"},
    {"status": "Pull complete", "id": "bbb"},
    {"status": "Digest: sha256:abc"},
]


def test_plain_output_prints_each_status_change_once():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    for msg in STREAM:
        printer.feed(msg)
    lines = out.getvalue().splitlines()
    assert lines == [
        "1: Pulling from test/busybox",
        "aaa: Pulling fs layer",
        "bbb: Pulling fs layer",
        "aaa: Downloading",
        "aaa: Download complete",
        "aaa: Pull complete",
        "bbb: Pull complete",
        "Digest: sha256:abc",
    ]
    assert "\x1b" not in out.getvalue()


def test_tty_output_draws_bars_in_place():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    for msg in STREAM[:5]:
        printer.feed(msg)
    text = out.getvalue()
    assert "[" + "=" * 19 + ">" + " " * 20 + "]" in text  # half-way bar
    assert "500B/1kB" in text and "1kB/1kB" in text
    # Updates move the cursor up to the layer's own line instead of appending lines.
    assert "\x1b[2A" in text  # "aaa" is two lines above the cursor ("bbb" is below it)
    assert text.count("\n") == 3  # one line per layer and the header, nothing appended


def test_table_pads_like_tabwriter():
    assert table(["A", "LONGER"], [["xxxx", "y"]]).splitlines() == ["A      LONGER", "xxxx   y"]
