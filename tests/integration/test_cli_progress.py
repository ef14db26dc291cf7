"""A long command shows its progress on a terminal and nowhere else; tables fit the terminal.

Real runs of ``safecity analyze`` on the seated-faces GIF (56 frames): under a
pseudo-terminal the bar is on standard error; through pipes, or with ``--json``,
there is no bar (``-v`` logs a summary line instead).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

SAFECITY = [sys.executable, "-m", "safecity"]
START = "2026-12-03T08:00:00+00:00"  # a fixed first-frame time: every event on that day


def _env(home: Path, columns: int) -> dict[str, str]:
    return dict(os.environ, SAFECITY_HOME=str(home / "data"), COLUMNS=str(columns))


def _piped(home: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SAFECITY, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(home, columns),
        cwd=home,
    )


def _stderr_on_a_terminal(home: Path, *args: str) -> tuple[int, str, str]:
    """Run with standard error on a pseudo-terminal (stdout piped): (rc, stdout, terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # rows, cols
    proc = subprocess.Popen(
        [*SAFECITY, *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=_env(home, 100),
        cwd=home,
    )
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=60), stdout, seen.decode(errors="replace")


@pytest.mark.slow
def test_analyze_shows_progress_on_a_terminal(tmp_path, data_dir):
    gif = str(data_dir / "video/seated-faces-480x270.gif")
    rc, stdout, terminal = _stderr_on_a_terminal(
        tmp_path, "analyze", gif, "--camera", "lobby", "--start-time", START
    )
    assert rc == 0, terminal
    # frames done of the total, the rate, the events so far and the ETA, on stderr
    assert "lobby: 100% 56/56" in terminal
    assert "56/56" in terminal and "frame/s" in terminal and "events=" in terminal
    assert "<" in terminal  # tqdm's "[elapsed<remaining]"
    assert "56/56" not in stdout and "frame/s" not in stdout
    assert "56 frames" in stdout  # the report, unchanged


@pytest.mark.slow
def test_analyze_off_a_terminal_draws_no_bar(tmp_path, data_dir):
    gif = str(data_dir / "video/seated-faces-480x270.gif")
    plain = _piped(tmp_path, "analyze", gif, "--camera", "lobby", "--start-time", START)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == ""  # no bar, and no log line without -v
    assert "frame/s" not in plain.stdout and "56/56" not in plain.stdout
    # --json: one JSON object on stdout; with -v the summary line is in the log (stderr)
    done = _piped(
        tmp_path, "-v", "analyze", gif, "--camera", "lobby2", "--start-time", START, "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["frames_in"] == 56
    assert "frame/s" not in done.stderr and "\r" not in done.stderr
    summary = [line for line in done.stderr.splitlines() if "lobby2: 56/56" in line]
    assert len(summary) == 1, done.stderr
    assert "INFO safecity.commands.analyze" in summary[0]
    assert "56/56 frames" in summary[0] and "events" in summary[0] and "(done)" in summary[0]

    # The events table at 80 columns: times whole, as HH:MM:SS under their date; the
    # long snapshot path left out, nothing cut to "…"; at 200 columns every column.
    narrow = _piped(tmp_path, "events", "--camera", "lobby", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert lines[0].strip() == "2026-12-03 (UTC)"
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in narrow.stdout
    header = lines[2]
    for column in ("id", "camera", "label", "start", "end"):
        assert f" {column} " in header
    assert "snapshot" not in header
    assert "08:00:0" in narrow.stdout and "2026-12-03 08:" not in narrow.stdout
    wide = _piped(tmp_path, "events", "--camera", "lobby", columns=200)
    header = wide.stdout.splitlines()[2]
    for column in ("track", "score", "snapshot"):
        assert f" {column} " in header
    rows = json.loads(_piped(tmp_path, "events", "--camera", "lobby", "--json").stdout)
    assert rows and all(r["snapshot_path"] in wide.stdout for r in rows)
    assert "…" not in wide.stdout


def test_progress_off_a_terminal_logs_a_line_every_interval(monkeypatch, caplog):
    from safecity import progress

    log = logging.getLogger("safecity.test.progress")
    caplog.set_level(logging.INFO, logger="safecity.test.progress")
    clock = iter(float(t) for t in range(0, 1000, 10))  # each call 10 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with progress.Progress("work", 10, "item", log, bar=None, counts=("events",)) as p:
        for _ in range(10):
            p.advance(events=1)
    lines = [r.getMessage() for r in caplog.records]
    # started at 0; one line each LOG_INTERVAL_S (30 s) of the 10 s steps, then the last
    assert lines[0].startswith("work: 3/10 items") and "ETA" in lines[0]
    assert len(lines) == 4 and lines[-1].startswith("work: 10/10 items")
    assert lines[-1].endswith("(done)") and "10 events" in lines[-1]
