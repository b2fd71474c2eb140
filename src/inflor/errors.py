"""The errors a user can cause, and the one place the command line turns them into a message.

Every problem that comes from an input (a recipe, an override, a dataset file, a checkpoint, a
run directory) or from the run's surroundings (a full disk, a lost DDP process) is raised as an
``InflorError`` whose message names the file or setting and says what was expected::

    InflorError                  exit status 1 unless the class says otherwise
    ├── ConfigError              a recipe, an override or a command-line value (exit status 2)
    ├── DataError                a dataset file that cannot be read or holds the wrong thing
    │   └── DataNotFoundError    dataset files that are not there (also a FileNotFoundError)
    ├── CheckpointError          a checkpoint that cannot be read, written or loaded into a model
    ├── RunError                 a run that cannot start, continue or finish
    │   └── NonFiniteLossError   a loss term became NaN or infinite
    └── AnalysisError            a run directory or a result the analysis commands cannot use

The classes also derive from the built-in exception each used to be (``ValueError`` for config
and data, ``RuntimeError`` for the others), so older ``except`` clauses still catch them; the
old import paths (``inflor.train.ConfigError``, ``inflor.train.checkpoint.CheckpointError``,
``inflor.analysis.runs.AnalysisError``, ...) re-export these classes.

``run_command`` is the command line's single error path: it prints
``inflor <command>: error: <message>`` on stderr and returns the exit status; with
``INFLOR_DEBUG=1`` (or ``inflor --debug``) the traceback is printed first. Anything else, a bug,
keeps its traceback.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Callable

__all__ = ["InflorError", "ConfigError", "DataError", "DataNotFoundError", "CheckpointError", "RunError",
           "NonFiniteLossError", "AnalysisError", "message", "debug_enabled", "run_command"]

DEBUG_ENV = "INFLOR_DEBUG"


class InflorError(Exception):
    """A problem the user can fix; the message says what is wrong, where, and what was expected."""

    exit_code = 1


class ConfigError(InflorError, ValueError):
    """A recipe or an override names an unknown key or holds a bad value (a usage error)."""

    exit_code = 2


class DataError(InflorError, ValueError):
    """A dataset file or folder that cannot be read or does not hold what the dataset expects."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Dataset files that are missing; the message lists what to put where."""


class CheckpointError(InflorError, RuntimeError):
    """A checkpoint file cannot be read or written, or does not fit the model it is loaded into."""


class RunError(InflorError, RuntimeError):
    """A problem that stops a run (printed without a traceback by the CLI)."""


class NonFiniteLossError(RunError):
    """A loss term became NaN or infinite."""


class AnalysisError(InflorError, RuntimeError):
    """A user-facing problem of the analysis commands: the message says what is wrong and what to do."""


def message(exc: BaseException) -> str:
    """The user-facing text of ``exc``.

    A DataLoader worker that raised re-raises in the main process as the same class built from
    ``"Caught X in DataLoader worker process N.\\nOriginal Traceback ..."``; the original
    message is the text after the traceback's last line ``module.X: ``.
    """
    text = str(exc).strip()
    if "\nOriginal Traceback" in text:
        cls = type(exc)
        for marker in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
            at = text.rfind("\n" + marker)
            if at >= 0:
                return text[at + 1 + len(marker):].strip()
    return text or type(exc).__name__


def debug_enabled(flag: bool = False) -> bool:
    """``--debug`` given, or ``INFLOR_DEBUG`` set to something other than empty / 0 / false."""
    return bool(flag) or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def run_command(prog: str, fn: Callable, *args, debug: bool = False) -> int:
    """``fn(*args)`` as a command: its return value (``None`` = 0) is the exit status; an
    ``InflorError`` or an ``OSError`` (a file the user named, a full disk) becomes one message
    ``prog: error: ...`` on stderr and exit status ``exit_code`` (1 for an ``OSError``); an
    interrupt (Ctrl-C, SIGTERM) exits with 128 + the signal number."""
    try:
        return int(fn(*args) or 0)
    except (InflorError, OSError) as e:
        if debug_enabled(debug):
            traceback.print_exc()
        print(f"{prog}: error: {message(e)}", file=sys.stderr, flush=True)
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt as e:
        if debug_enabled(debug):
            traceback.print_exc()
        signum = getattr(e, "signum", 2)
        print(f"{prog}: interrupted" + (f" ({e})" if str(e) else ""), file=sys.stderr, flush=True)
        return 128 + signum
