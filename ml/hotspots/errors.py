"""The package's own exceptions. Library code raises these, never SystemExit: the command line
(hotspots.cli) turns them into a message and exit status 1, and under Airflow a task fails with
the same message in its log."""

from __future__ import annotations


class HotspotsError(Exception):
    """A condition the user can act on: nothing loaded or built yet, dates outside the data,
    an unknown alert. The message says what to do."""


class NotReady(HotspotsError):
    """The warehouse does not hold what the step needs yet (ingest, build features, train first)."""


class BadRequest(HotspotsError):
    """The arguments ask for something the warehouse cannot give (dates outside its range, an
    unknown alert)."""
