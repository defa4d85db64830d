"""Screen-state tests for each escape-sequence family, on the Textual-free core."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from tui.terminal.cells import BLANK, Cell
from tui.terminal.core import TerminalCore


def term(columns: int = 10, lines: int = 4, *chunks: bytes | str, **kwargs) -> TerminalCore:
    core = TerminalCore(columns, lines, **kwargs)
    for chunk in chunks:
        core.feed(chunk.encode() if isinstance(chunk, str) else chunk)
    return core


def replies_of(*chunks: str, columns: int = 10, lines: int = 4) -> bytes:
    out = bytearray()
    core = TerminalCore(columns, lines, on_reply=out.extend)
    for chunk in chunks:
        core.feed(chunk.encode())
    return bytes(out)


def cell(core: TerminalCore, x: int, y: int) -> Cell:
    return core.screen.buffer[y][x]


def cursor(core: TerminalCore) -> tuple[int, int]:
    return core.screen.cursor.x, core.screen.cursor.y


# -- the import graph ---------------------------------------------------------------------


def test_core_does_not_import_textual():
    code = (
        "import sys\n"
        "import tui.terminal.core, tui.terminal.terminal, tui.terminal.session\n"
        "import tui.terminal.keys, tui.terminal.mouse, tui.terminal.docker_session\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- text, wrapping, wide and combining characters --------------------------------------------


def test_plain_text_and_crlf():
    core = term(10, 4, "hello\r\nworld")
    assert core.text() == ["hello", "world", "", ""]
    assert cursor(core) == (5, 1)


def test_autowrap_and_pending_wrap():
    core = term(5, 3, "abcde")
    assert cursor(core) == (5, 0)  # pending wrap: still on the first line
    core.feed(b"f")
    assert core.text()[:2] == ["abcde", "f"]
    assert core.screen.buffer[0].wrapped


def test_no_autowrap_overwrites_last_column():
    core = term(5, 2, "\x1b[?7labcdefgh")
    assert core.text()[0] == "abcdh"
    assert cursor(core) == (4, 0)


def test_lone_linefeed_keeps_column_and_lnm_returns():
    assert term(6, 3, "ab\ncd").text()[:2] == ["ab", "  cd"]
    assert term(6, 3, "\x1b[20hab\ncd").text()[:2] == ["ab", "cd"]


def test_wide_characters_take_two_cells():
    core = term(6, 2, "a中b")
    assert cell(core, 1, 0).data == "中" and cell(core, 2, 0).data == ""
    assert cursor(core) == (4, 0)
    assert core.text()[0] == "a中b"


def test_wide_character_wraps_at_the_margin():
    core = term(4, 2, "abc中")
    assert core.text()[:2] == ["abc", "中"]


def test_overwriting_half_a_wide_character_blanks_the_other_half():
    core = term(6, 2, "中文\x1b[1;2Hx")
    assert core.text()[0] == " x文"
    core = term(6, 2, "中文\x1b[1;3Hy")
    assert core.text()[0] == "中y"


def test_combining_marks_join_the_previous_cell():
    core = term(6, 2, "e\u0301x")
    assert cell(core, 0, 0).data == "e\u0301"
    assert cell(core, 1, 0).data == "x"


def test_utf8_split_across_reads():
    data = "añ中😀".encode()
    for cut in range(1, len(data)):
        core = term(10, 2, data[:cut], data[cut:])
        assert core.text()[0] == "añ中😀", cut


def test_invalid_utf8_becomes_replacement_character():
    assert term(10, 2, b"a\xffb").text()[0] == "a\ufffdb"


def test_lazy_rows_read_back_and_edit():
    core = term(10, 3, "abcdef\x1b[1;3H\x1b[1;31mX\x1b[1;5H\x1b[2P")
    assert core.text()[0] == "abXd"
    assert cell(core, 2, 0).fg == "red" and cell(core, 2, 0).bold
    assert cell(core, 0, 0) == Cell("a")


# -- cursor movement ------------------------------------------------------------------------


def test_cursor_positioning_and_bounds():
    core = term(10, 5, "\x1b[3;4H")
    assert cursor(core) == (3, 2)
    core.feed(b"\x1b[99;99H")
    assert cursor(core) == (9, 4)
    core.feed(b"\x1b[2A\x1b[3D")
    assert cursor(core) == (6, 2)
    core.feed(b"\x1b[20C\x1b[20B")
    assert cursor(core) == (9, 4)
    core.feed(b"\x1b[2;5f\x1b[G")
    assert cursor(core) == (0, 1)
    core.feed(b"\x1b[4d\x1b[7`")
    assert cursor(core) == (6, 3)
    core.feed(b"\x1b[2F")
    assert cursor(core) == (0, 1)
    core.feed(b"\x1b[5G\x1b[E")
    assert cursor(core) == (0, 2)


def test_origin_mode_is_relative_to_the_region():
    core = term(10, 6, "\x1b[2;4r\x1b[?6h\x1b[1;1H")
    assert cursor(core) == (0, 1)
    core.feed(b"\x1b[9;1H")
    assert cursor(core) == (0, 3)


def test_save_and_restore_cursor_with_attributes():
    core = term(10, 4, "\x1b[2;3H\x1b[31m\x1b7\x1b[0m\x1b[4;8H\x1b8X")
    assert cursor(core) == (3, 1)
    assert cell(core, 2, 1).fg == "red"
    core = term(10, 4, "\x1b[3;4H\x1b[s\x1b[H\x1b[u")
    assert cursor(core) == (3, 2)


def test_tabs_forward_back_and_stops():
    core = term(30, 2, "\tx")
    assert cursor(core) == (9, 0)
    core.feed(b"\x1b[2I")
    assert cursor(core) == (24, 0)
    core.feed(b"\x1b[Z")
    assert cursor(core) == (16, 0)
    core.feed(b"\x1b[3g\x1b[5G\x1bH\x1b[G\t")
    assert cursor(core) == (4, 0)


def test_backspace_stops_at_column_zero_and_leaves_pending_wrap():
    assert cursor(term(5, 2, "ab\b\b\b")) == (0, 0)
    # from the pending-wrap position the first step lands on the last column (as tmux)
    assert cursor(term(5, 2, "abcde\b")) == (4, 0)
    assert term(5, 2, "abcde\bZ").text()[0] == "abcdZ"


def test_edits_at_the_pending_wrap_position_do_nothing():
    for sequence in ("\x1b[K", "\x1b[2X", "\x1b[2@", "\x1b[2P", "\t"):
        core = term(5, 2, "abcde" + sequence)
        assert core.text()[0] == "abcde", sequence
        assert cursor(core) == (5, 0), sequence


def test_wide_character_without_autowrap_is_dropped_at_the_margin():
    assert term(5, 2, "\x1b[?7labcd中x").text()[0] == "abcdx"


# -- erasing and editing --------------------------------------------------------------------


def test_erase_in_line_variants():
    assert term(8, 2, "abcdefgh\x1b[1;4H\x1b[K").text()[0] == "abc"
    assert term(8, 2, "abcdefgh\x1b[1;4H\x1b[1K").text()[0] == "    efgh"
    assert term(8, 2, "abcdefgh\x1b[1;4H\x1b[2K").text()[0] == ""


def test_erase_in_display_variants():
    rows = "aaaa\r\nbbbb\r\ncccc"
    assert term(4, 3, rows, "\x1b[2;3H\x1b[J").text() == ["aaaa", "bb", ""]
    assert term(4, 3, rows, "\x1b[2;3H\x1b[1J").text() == ["", "   b", "cccc"]
    assert term(4, 3, rows, "\x1b[2J").text() == ["", "", ""]


def test_erase_with_background_colour():
    core = term(6, 2, "abcdef\x1b[44m\x1b[1;3H\x1b[K")
    assert cell(core, 1, 0) == Cell("b")
    assert cell(core, 2, 0) == Cell(" ", bg="blue")
    assert cell(core, 5, 0) == Cell(" ", bg="blue")
    core.feed(b"\x1b[2;1H\x1b[2K")
    assert cell(core, 4, 1) == Cell(" ", bg="blue")


def test_erase_insert_delete_characters():
    assert term(8, 2, "abcdefgh\x1b[1;3H\x1b[2X").text()[0] == "ab  efgh"
    assert term(8, 2, "abcdefgh\x1b[1;3H\x1b[2@").text()[0] == "ab  cdef"
    assert term(8, 2, "abcdefgh\x1b[1;3H\x1b[2P").text()[0] == "abefgh"
    assert term(8, 2, "abcdef\x1b[1;2H\x1b[4hXY").text()[0] == "aXYbcdef"


def test_insert_and_delete_lines_inside_region():
    rows = "1\r\n2\r\n3\r\n4\r\n5"
    assert term(3, 5, rows, "\x1b[2;4r\x1b[3;1H\x1b[L").text() == ["1", "2", "", "3", "5"]
    assert term(3, 5, rows, "\x1b[2;4r\x1b[2;1H\x1b[2M").text() == ["1", "4", "", "", "5"]


# -- scrolling and scrollback ----------------------------------------------------------------


def test_linefeed_at_bottom_scrolls_into_history():
    core = term(5, 2, "a\r\nb\r\nc\r\nd")
    assert core.text() == ["c", "d"]
    assert core.screen.history_text() == ["a", "b"]


def test_scrollback_is_bounded():
    core = term(5, 2, "".join(f"{i}\r\n" for i in range(50)), scrollback=10)
    assert len(core.screen.history) == 10
    assert core.screen.history_text()[-1] == "48"


def test_scroll_region_does_not_feed_history():
    core = term(3, 4, "1\r\n2\r\n3\r\n4\x1b[2;3r\x1b[3;1H\n\n")
    assert core.text() == ["1", "", "", "4"]
    assert len(core.screen.history) == 0


def test_scroll_up_and_down_sequences():
    rows = "1\r\n2\r\n3\r\n4"
    assert term(3, 4, rows, "\x1b[2S").text() == ["3", "4", "", ""]
    assert term(3, 4, rows, "\x1b[S").screen.history_text() == ["1"]
    assert term(3, 4, rows, "\x1b[2T").text() == ["", "", "1", "2"]
    assert term(3, 4, rows, "\x1b[2;3r\x1b[T").text() == ["1", "", "2", "4"]
    # CSI T with five parameters is mouse highlight tracking, not a scroll
    assert term(3, 4, rows, "\x1b[1;2;3;4;5T").text() == ["1", "2", "3", "4"]


def test_index_reverse_index_next_line():
    core = term(3, 3, "a\x1bDb\x1bEc")
    assert core.text() == ["a", " b", "c"]
    core = term(3, 3, "a\x1bMb")
    assert core.text() == [" b", "a", ""]


def test_clear_scrollback():
    core = term(3, 2, "1\r\n2\r\n3\r\n4")
    assert core.screen.history
    core.feed(b"\x1b[3J")
    assert not core.screen.history


# -- alternate screen ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [47, 1047, 1049])
def test_alternate_screen_keeps_the_main_one(mode: int):
    core = term(6, 3, "main\r\nscreen")
    core.feed(f"\x1b[?{mode}h".encode())
    assert core.screen.alternate
    assert core.text() == ["", "", ""]
    core.feed(b"\x1b[Halt")
    core.feed(f"\x1b[?{mode}l".encode())
    assert not core.screen.alternate
    assert core.text() == ["main", "screen", ""]


def test_1049_saves_and_restores_the_cursor_and_keeps_history_clean():
    core = term(6, 3, "a\r\nb")
    core.feed(b"\x1b[?1049h\x1b[3;5H" + b"x\r\n" * 10)
    assert len(core.screen.history) == 0
    core.feed(b"\x1b[?1049l")
    assert cursor(core) == (1, 1)


def test_resize_in_alternate_screen_resizes_main_too():
    core = term(6, 3, "abc\x1b[?1049h")
    core.resize(4, 5)
    core.feed(b"\x1b[?1049l")
    assert core.text() == ["abc", "", "", "", ""]


# -- modes and reports -----------------------------------------------------------------------


def test_private_modes_read_by_the_widget():
    core = term(10, 3, "\x1b[?1h\x1b[?2004h\x1b[?1004h\x1b[?1002h\x1b[?1006h\x1b=")
    assert core.application_cursor and core.bracketed_paste and core.focus_events
    assert core.mouse_tracking == "button" and core.mouse_encoding == "sgr"
    assert core.application_keypad
    core.feed(b"\x1b[?1l\x1b[?2004l\x1b[?1002l\x1b[?1003h\x1b[?1006l\x1b>")
    assert not core.application_cursor and not core.bracketed_paste
    assert core.mouse_tracking == "any" and core.mouse_encoding == "x10"
    assert not core.application_keypad


def test_cursor_visibility_and_style():
    core = term(10, 3, "\x1b[?25l\x1b[4 q")
    assert core.screen.cursor.hidden and core.screen.cursor_style == 4
    core.feed(b"\x1b[?25h")
    assert not core.screen.cursor.hidden


@pytest.mark.parametrize(
    ("sequence", "shape", "blink"),
    [
        ("", "block", False),
        ("\x1b[0 q", "block", False),
        ("\x1b[1 q", "block", True),
        ("\x1b[2 q", "block", False),
        ("\x1b[3 q", "underline", True),
        ("\x1b[4 q", "underline", False),
        ("\x1b[5 q", "bar", True),
        ("\x1b[6 q", "bar", False),
        ("\x1b[6 q\x1b[?12h", "bar", True),
        ("\x1b[3 q\x1b[?12l", "underline", False),
        ("\x1b[5 q\x1b[9 q", "bar", True),
        ("\x1b[5 q\x1bc", "block", False),
    ],
)
def test_cursor_shapes_decscusr(sequence: str, shape: str, blink: bool):
    core = term(10, 3, sequence)
    assert (core.cursor_shape, core.cursor_blink) == (shape, blink)


def test_device_status_and_attributes_replies():
    assert replies_of("ab\x1b[6n") == b"\x1b[1;3R"
    assert replies_of("\x1b[5n") == b"\x1b[0n"
    assert replies_of("\x1b[2;3r\x1b[?6h\x1b[2;2H\x1b[6n") == b"\x1b[2;2R"
    assert replies_of("\x1b[?6n") == b"\x1b[?1;1R"
    assert replies_of("\x1b[c") == b"\x1b[?62;22c"
    assert replies_of("\x1b[0c") == b"\x1b[?62;22c"
    assert replies_of("\x1b[>c") == b"\x1b[>1;10;0c"
    assert replies_of("\x1b[18t", columns=80, lines=24) == b"\x1b[8;24;80t"
    assert replies_of("\x1b[>q").startswith(b"\x1bP>|portside")


def test_mode_queries_decrqm():
    assert replies_of("\x1b[?2004h\x1b[?2004$p") == b"\x1b[?2004;1$y"
    assert replies_of("\x1b[?2026$p") == b"\x1b[?2026;2$y"
    assert replies_of("\x1b[?1049h\x1b[?1049$p") == b"\x1b[?1049;1$y"
    assert replies_of("\x1b[?4242$p") == b"\x1b[?4242;0$y"
    assert replies_of("\x1b[4$p") == b"\x1b[4;2$y"


def test_colour_queries_are_answered():
    assert replies_of("\x1b]11;?\x07") == b"\x1b]11;rgb:0000/0000/0000\x1b\\"
    assert replies_of("\x1b]10;?\x1b\\") == b"\x1b]10;rgb:e5e5/e5e5/e5e5\x1b\\"


def test_soft_and_full_reset():
    core = term(10, 3, "abc\x1b[?7l\x1b[?25l\x1b[4h\x1b[31m\x1b[2;3r\x1b[!p")
    assert core.text()[0] == "abc"
    assert not core.screen.cursor.hidden and core.screen.margins is None
    assert core.screen.cursor.attrs == BLANK
    core.feed(b"\x1bc")
    assert core.text() == ["", "", ""]


def test_alignment_display():
    assert term(3, 2, "\x1b#8").text() == ["EEE", "EEE"]


# -- graphic rendition ---------------------------------------------------------------------


def sgr(params: str) -> Cell:
    core = term(5, 1, f"\x1b[{params}mX")
    return cell(core, 0, 0)


def test_sgr_basic_flags_and_resets():
    c = sgr("1;2;3;4;5;7;9")
    assert (c.bold, c.dim, c.italics, c.underscore, c.blink, c.reverse, c.strikethrough) == (
        (True,) * 7
    )
    c = sgr("1;2;3;4;7;22;23;24;27")
    assert not (c.bold or c.dim or c.italics or c.underscore or c.reverse)
    assert sgr("1;31;0") == Cell("X")
    assert sgr("1;31;") == Cell("X")  # an empty parameter is 0


def test_sgr_colours():
    assert (sgr("31;42").fg, sgr("31;42").bg) == ("red", "green")
    assert (sgr("93;104").fg, sgr("93;104").bg) == ("brightbrown", "brightblue")
    assert sgr("38;5;1").fg == "red"  # palette 0-15 keep their ANSI names
    assert sgr("38;5;9").fg == "brightred"
    assert sgr("38;5;196").fg == "ff0000"
    assert sgr("48;5;244").bg == "808080"
    assert sgr("38;2;1;2;3").fg == "010203"
    assert sgr("31;39").fg == "default"


def test_sgr_colon_sub_parameters():
    assert sgr("38:2::10:20:30").fg == "0a141e"
    assert sgr("38:2:10:20:30").fg == "0a141e"
    assert sgr("48:5:21").bg == "0000ff"
    assert sgr("4:3").underscore
    assert not sgr("4:3;4:0").underscore
    c = sgr("58:2::255:0:0;31")  # underline colour: ignored, not misread
    assert c.fg == "red" and c.bg == "default"
    c = sgr("58;5;200;1")
    assert c.bold and c.fg == "default"


def test_private_sgr_forms_are_ignored():
    # vim and fish send xterm's modifyOtherKeys: must not become underline + bold
    assert sgr(">4;1") == Cell("X")
    assert sgr("?4") == Cell("X")


# -- strings: OSC, DCS, APC ----------------------------------------------------------------


def test_osc_titles_with_both_terminators():
    core = term(10, 2, "\x1b]0;first\x07")
    assert core.title == "first" and core.screen.icon_name == "first"
    core.feed(b"\x1b]2;second\x1b\\")
    assert core.title == "second"
    core.feed(b"\x1b]1;icon\x07")
    assert core.title == "second" and core.screen.icon_name == "icon"
    assert core.text() == ["", ""]


def test_osc_52_copies_but_never_answers_a_read():
    copied: list[str] = []
    replies = bytearray()
    core = TerminalCore(10, 2, on_reply=replies.extend, on_clipboard=copied.append)
    payload = base64.b64encode("copied ✓".encode()).decode()
    core.feed(f"\x1b]52;c;{payload}\x07".encode())
    core.feed(b"\x1b]52;c;?\x07")
    assert copied == ["copied ✓"]
    assert replies == b""


def test_string_sequences_are_not_drawn():
    core = term(
        20, 2, "a\x1bPq#0;2;0;0;0#0~~@@\x1b\\b\x1b_Gf=24;AAAA\x1b\\c\x1b^pm\x1b\\d\x1bXsos\x1b\\e"
    )
    assert core.text()[0] == "abcde"
    core = term(20, 2, "a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b]777;notify;x\x07z")
    assert core.text()[0] == "alink z"


def test_string_split_across_reads_and_huge_payloads():
    core = TerminalCore(20, 2)
    core.feed(b"a\x1bPq")
    for _ in range(100):
        core.feed(b"#0;2;0;0;0" * 1000)
        assert len(core.parser.pending) <= 3  # the payload is not kept
    core.feed(b"~~\x1b")
    core.feed(b"\\b\x1b]0;ti")
    core.feed(b"tle\x07c")
    assert core.text()[0] == "abc"
    assert core.title == "title"


def test_every_escape_sequence_split_at_every_byte():
    stream = "x\x1b[1;31mR\x1b[0m\x1b]2;t\x07\x1b[?1049h\x1b[2;3HQ\x1b(0q\x1b(B\x1b[>4;1m!"
    whole = term(10, 3, stream)
    data = stream.encode()
    for cut in range(1, len(data)):
        split = term(10, 3, data[:cut], data[cut:])
        assert split.text() == whole.text(), cut
        assert cell(split, 2, 1) == cell(whole, 2, 1), cut
        assert split.title == "t"


def test_unknown_and_malformed_sequences_do_not_raise_or_draw():
    core = term(
        20,
        2,
        "a\x1b[?1;2$x\x1b[=5u\x1b[<1u\x1b[?u\x1b[>1;2;3m\x1b[99999999999999999999X"
        "\x1b%G\x1b[1 t\x1b#3b\x1b[?9999h\x1b[2$~c\x9bd",
    )
    assert core.text()[0] == "abcd"


# -- other sequences ------------------------------------------------------------------------


def test_repeat_last_character():
    assert term(12, 2, "ab\x1b[3b").text()[0] == "abbbb"
    assert term(12, 2, "\x1b[31m=\x1b[4b").text()[0] == "====="
    assert cell(term(12, 2, "\x1b[31m=\x1b[4b"), 4, 0).fg == "red"


def test_dec_special_graphics_charset():
    assert term(10, 2, "\x1b(0lqqk\x1b(Bx").text()[0] == "┌──┐x"
    assert term(10, 2, "\x1b)0a\x0eq\x0fq").text()[0] == "a─q"


def test_resize_shrinks_into_history_and_grows_back():
    core = term(6, 4, "1\r\n2\r\n3\r\n4")
    core.resize(6, 2)
    assert core.text() == ["3", "4"]
    assert core.screen.history_text() == ["1", "2"]
    assert cursor(core) == (1, 1)
    core.resize(6, 4)
    assert core.text() == ["1", "2", "3", "4"]
    core.resize(3, 4)
    assert core.columns == 3
    core.feed(b"\x1b[1;1Habcdef")
    assert core.text()[:2] == ["abc", "def"]


def test_resize_reflows_the_scrollback_and_keeps_the_cursor_in_its_text():
    core = term(10, 3, "abcdefghijKLMNO\r\n1\r\n2\r\n3\x1b[31m45678901\x1b[mXYZ")
    assert core.screen.history_text() == ["abcdefghij", "KLMNO", "1"]
    assert core.text() == ["2", "345678901X", "YZ"]
    core.resize(5, 3)
    assert core.screen.history_text() == ["abcde", "fghij", "KLMNO", "1", "2"]
    assert core.text() == ["34567", "8901X", "YZ"]
    assert cursor(core) == (2, 2)
    assert (cell(core, 0, 0).fg, cell(core, 1, 0).fg) == ("default", "red")
    assert (cell(core, 3, 1).fg, cell(core, 4, 1).fg) == ("red", "default")
    core.resize(20, 3)
    assert core.screen.history_text() == ["abcdefghijKLMNO"]
    assert core.text() == ["1", "2", "345678901XYZ"]
    assert cursor(core) == (12, 2)


def test_resize_with_blank_lines_below_drops_them_first():
    core = term(6, 5, "top")
    core.resize(6, 2)
    assert core.text() == ["top", ""]
    assert not core.screen.history


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        TerminalCore(0, 5)
    with pytest.raises(ValueError, match="positive"):
        TerminalCore(5, 5).resize(5, -1)


# -- robustness ---------------------------------------------------------------------------

_PIECES = [
    *(b"\x1b[", b"\x1b]", b"\x1bP", b"\x1b", b";", b"?", b">", b"1", b"12", b"99925", b":"),
    *(b"m", b"H", b"J", b"K", b"r", b"h", b"l", b"S", b"T", b"L", b"M", b"@", b"P", b"X"),
    *(b"b", b"Z", b"I", b"g", b"n", b"c", b"t", b"q", b" ", b"$p", b"\x07", b"\x1b\\", b"\r"),
    *(b"\n", b"\t", b"\x08", b"\x0e", b"\x0f", "中".encode(), "é".encode(), b"\xcc\x81"),
    *(b"\xff", b"abc", b"(0", b"#8", b"1049", b"47", b"2026", b"7", b"6", b"25", b"\x9b"),
    *(b"38;2;1;2;3", b"38:5:200", b"D", b"E", b"8", b"=", b"f", b"d", b"G", b"A", b"B", b"C"),
]


def test_random_streams_never_raise_and_keep_invariants():
    import random

    rng = random.Random(1234)
    for _ in range(1500):
        columns, lines = rng.randint(1, 30), rng.randint(1, 12)
        core = TerminalCore(columns, lines, scrollback=50)
        data = b"".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 200)))
        step = rng.randint(1, 40)
        for start in range(0, len(data), step):
            core.feed(data[start : start + step])
        if rng.random() < 0.3:
            core.resize(rng.randint(1, 30), rng.randint(1, 12))
            core.feed(data[:100])
        screen = core.screen
        assert 0 <= screen.cursor.y < screen.lines
        assert 0 <= screen.cursor.x <= screen.columns
        assert len(screen.buffer) == screen.lines
        for row in screen.buffer:
            assert len(row.cells(screen.columns)) == screen.columns
        for index in range(len(screen.history)):
            screen.history_row(index).cells(screen.columns)
        assert len(core.parser.pending) < 1000
