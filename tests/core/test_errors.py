"""The user-error hierarchy and the command line's one error path (inflor.errors)."""
import sys

import pytest
from torch._utils import ExceptionWrapper

from inflor import errors
from inflor.errors import (AnalysisError, CheckpointError, ConfigError, DataError, DataNotFoundError, InflorError,
                           NonFiniteLossError, RunError, message, run_command)


def test_one_hierarchy_that_old_except_clauses_still_catch():
    assert all(issubclass(c, InflorError) for c in (ConfigError, DataError, DataNotFoundError, CheckpointError,
                                                     RunError, NonFiniteLossError, AnalysisError))
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(DataNotFoundError, FileNotFoundError) and str(DataNotFoundError("put it there")) == "put it there"
    assert all(issubclass(c, RuntimeError) for c in (CheckpointError, RunError, AnalysisError))
    assert (ConfigError.exit_code, DataError.exit_code, RunError.exit_code) == (2, 1, 1)


def test_old_import_paths_are_the_same_classes():
    from inflor.analysis.runs import AnalysisError as A
    from inflor.train import CheckpointError as C1, ConfigError as C2, NonFiniteLossError as N, RunError as R
    from inflor.train.checkpoint import CheckpointError as C3
    from inflor.train.config import ConfigError as C4
    from inflor.train.trainer import RunError as R2
    assert (A, C1, C3, C2, C4, N, R, R2) == (AnalysisError, CheckpointError, CheckpointError, ConfigError,
                                             ConfigError, NonFiniteLossError, RunError, RunError)


def _raise(exc):
    def fn():
        raise exc
    return fn


@pytest.mark.parametrize("exc, code, line", [
    (ConfigError("unknown key 'x'"), 2, "inflor t: error: unknown key 'x'\n"),
    (DataError("a.npz lacks y_train"), 1, "inflor t: error: a.npz lacks y_train\n"),
    (OSError(28, "No space left on device", "out/m.csv"), 1,
     "inflor t: error: [Errno 28] No space left on device: 'out/m.csv'\n"),
])
def test_run_command_prints_one_line_and_returns_the_status(exc, code, line, capsys, monkeypatch):
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
    assert run_command("inflor t", _raise(exc)) == code
    assert capsys.readouterr().err == line


def test_interrupts_exit_with_128_plus_the_signal(capsys):
    from inflor.train.interrupts import Interrupted
    assert run_command("inflor t", _raise(Interrupted(15))) == 143
    assert capsys.readouterr().err == "inflor t: interrupted (SIGTERM)\n"
    assert run_command("inflor t", _raise(KeyboardInterrupt())) == 130


def test_a_bug_keeps_its_traceback_and_debug_shows_user_errors_too(capsys, monkeypatch):
    with pytest.raises(ZeroDivisionError):
        run_command("inflor t", lambda: 1 / 0)
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert run_command("inflor t", _raise(RunError("stopped"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and err.endswith("inflor t: error: stopped\n")
    monkeypatch.setenv(errors.DEBUG_ENV, "0")
    assert not errors.debug_enabled() and errors.debug_enabled(True)


def test_message_of_an_error_re_raised_from_a_dataloader_worker():
    try:
        raise DataError("cannot read image a/b.png (PIL cannot identify it as an image)")
    except DataError:
        wrapped = ExceptionWrapper(sys.exc_info(), where="in DataLoader worker process 0")
    with pytest.raises(DataError) as info:
        wrapped.reraise()
    assert "Original Traceback" in str(info.value)
    assert message(info.value) == "cannot read image a/b.png (PIL cannot identify it as an image)"
    assert message(RunError("plain")) == "plain"
