"""What the user typed or a manifest held is shown as it is: rich markup, emoji codes and format
braces stay literal, and control characters (escapes, bell, bidi overrides) are shown escaped
instead of acting on the terminal."""

from __future__ import annotations

import json

import pytest

from tests.workers.cli_helpers import RAW_CONTROLS, one_line_error, run, seed, terminal

# A batch name, and how it must read on the screen.
NAMES = {
    "[/]": "[/]",
    "[red]x": "[red]x",
    "[bold]b[/bold]": "[bold]b[/bold]",
    ":cat:": ":cat:",
    "{": "{",
    "{task.id}": "{task.id}",
    "\x1b[31mred": "\\x1b[31mred",
    "a\u202eb": "a\\u202eb",
    "bell\x07": "bell\\x07",
    "line\nbreak": "line\\nbreak",
}


def no_raw_controls(text: str, *, on_terminal: bool) -> bool:
    """On a terminal rich styles with escapes of its own; those of the names must not be there."""
    if not on_terminal:
        return not any(c in text for c in RAW_CONTROLS)
    return not any(raw in text for raw in ("\x1b[31mred", "\u202e", "\x07", "line\nbreak"))


def rejected(key: str) -> dict:
    return {"key": key, "status": "rejected", "error": "audio file not found"}


@pytest.mark.parametrize("on_terminal", [False, True], ids=["piped", "terminal"])
def test_status_shows_every_batch_as_named(database_url, on_terminal):
    for name in [*NAMES, "plain"]:
        seed(database_url, name, [rejected("r1")])
    proc = run("status", env_extra=terminal() if on_terminal else None)
    assert proc.returncode == 0, proc.stderr
    for shown in [*NAMES.values(), "plain"]:
        assert f"batch {shown}" in proc.stdout, shown
    assert "\U0001f431" not in proc.stdout  # :cat: is not an emoji code here
    assert no_raw_controls(proc.stdout, on_terminal=on_terminal)


@pytest.mark.parametrize("name", ["[/]", "[red]x", "\x1b[31mred"])
def test_status_of_one_batch_shows_its_name(database_url, name):
    seed(database_url, name, [rejected("r1")])
    proc = run("status", "--batch", name, env_extra=terminal())
    assert proc.returncode == 0, proc.stderr
    assert f"batch {NAMES[name]}" in proc.stdout
    assert no_raw_controls(proc.stdout, on_terminal=True)


@pytest.mark.parametrize("on_terminal", [False, True], ids=["piped", "terminal"])
def test_wait_shows_the_batch_as_named(database_url, on_terminal):
    names = ["[/]", "{", ":cat:", "\x1b[31mred"]
    for name in names:
        seed(database_url, name, [rejected("r1")])
    for name in names:
        proc = run("wait", "--batch", name, "--timeout", "5", env_extra=terminal() if on_terminal else None)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"batch {NAMES[name]}: 1/1 terminal (1 rejected)\n"
        assert f"batch {NAMES[name]}" in proc.stderr  # the bar, or the plain progress line
        assert no_raw_controls(proc.stdout + proc.stderr, on_terminal=on_terminal)


IDS = ["\x1b[2J\x1b[31mowned", "bell\x07", "cr\rover", "rlo\u202eevil", "[red]markup"]


@pytest.mark.parametrize("on_terminal", [False, True], ids=["piped", "terminal"])
def test_ingest_shows_rejected_ids_and_reasons_escaped(database_url, tmp_path, on_terminal):
    manifest = tmp_path / "m.jsonl"
    rows = [{"id": key, "audio": "missing\x1b]0;title\x07.wav", "ref_text": "x"} for key in IDS]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    batch = "b\x1b[1m[red]"
    proc = run("ingest", str(manifest), "--batch", batch, env_extra=terminal() if on_terminal else None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "batch b\\x1b[1m[red]: 0 accepted, 5 rejected; 5 jobs recorded, 0 checks queued\n"
    # On a terminal the bar's last frame (erased) comes first: look for the lines within stderr.
    assert proc.stderr.count("rejected ") == 5 and "Traceback" not in proc.stderr
    assert "rejected \\x1b[2J\\x1b[31mowned: " in proc.stderr and "rejected [red]markup: " in proc.stderr
    assert "missing\\x1b]0;title\\x07.wav" in proc.stderr
    assert no_raw_controls(proc.stdout, on_terminal=False)
    assert not any(raw in proc.stderr for raw in ("\x1b[2J", "\x1b]0;", "\x07", "cr\rover", "\u202e"))


def test_errors_show_control_characters_escaped(database_url, tmp_path):
    bad = tmp_path / "bad\x1b[2J.txt"
    bad.write_text("id,audio\n")
    proc = run("ingest", str(bad))
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "bad\\x1b[2J.txt" in line and "\x1b" not in proc.stderr
    proc = run("report", "--batch", "\x1b[31mx")
    assert proc.returncode == 1
    assert one_line_error(proc) == "voxqueue: error: no batch named '\\x1b[31mx'"
