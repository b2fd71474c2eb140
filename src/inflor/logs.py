"""Progress lines (the trainer's epoch lines, the commands' "[i/n] ..." lines) go through the
``logging`` logger ``"inflor"`` at level INFO.

Its default handler writes each message alone (format ``%(message)s``, no level or time) to the
*current* ``sys.stdout`` and flushes it: the lines ``print(msg, flush=True)`` wrote before, also
under ``contextlib.redirect_stdout`` and pytest's ``capsys``. The logger does not propagate, so a
root handler set by the application does not print them twice. To take them over::

    log = logging.getLogger("inflor")
    log.removeHandler(inflor.logs.DEFAULT_HANDLER)   # or keep it and add your own
    log.propagate = True                             # e.g. to reach the root logger's handlers

or lower the volume with ``log.setLevel(logging.WARNING)``. A ``log=`` callable passed to
``Trainer`` / ``run_training`` still replaces the logger for that run.
"""
from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("inflor")


class StdoutHandler(logging.StreamHandler):
    """A StreamHandler whose stream is whatever ``sys.stdout`` is when a record is written."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:   # StreamHandler.__init__ assigns one; the property wins
        pass


DEFAULT_HANDLER = StdoutHandler()
if not any(isinstance(h, StdoutHandler) for h in LOGGER.handlers):
    LOGGER.addHandler(DEFAULT_HANDLER)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def progress(msg: str) -> None:
    """One progress line: ``logging.getLogger("inflor").info(msg)``."""
    LOGGER.info(msg)


def warning(msg: str) -> None:
    """A line about something that went wrong but does not stop the command (a failed seed or
    row): ``logging.getLogger("inflor").warning(msg)``, printed the same way."""
    LOGGER.warning(msg)
