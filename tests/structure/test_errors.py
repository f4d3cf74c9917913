"""Library code raises the package's own exceptions (hotspots.errors), never SystemExit; the
command line turns them into a message and exit status 1."""

from __future__ import annotations

import re
from pathlib import Path

from hotspots import cli
from hotspots.errors import BadRequest, HotspotsError, NotReady

PACKAGE = Path(__file__).resolve().parents[2] / "ml" / "hotspots"
# commands whose whole job is the command line
COMMANDS = {"cli.py", "bench.py", "__main__.py"}


def test_no_library_module_raises_system_exit():
    offenders = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if p.name not in COMMANDS
                 for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bSystemExit\b", line)
                 and not line.lstrip().startswith("#") and "errors.py" not in str(p)]
    assert offenders == []


def test_the_command_line_turns_package_errors_into_a_message(monkeypatch, capsys):
    def fails(argv=None):
        raise NotReady("score: no features built in this warehouse yet")

    monkeypatch.setattr(cli, "main", fails)
    assert cli.run(["score"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "hotspots: score: no features built in this warehouse yet"
    assert issubclass(NotReady, HotspotsError) and issubclass(BadRequest, HotspotsError)
