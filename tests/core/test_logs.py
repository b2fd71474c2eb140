"""Progress lines go through logging.getLogger("inflor"); its default handler prints each message
alone to the current stdout, exactly as print(msg, flush=True) did."""
import contextlib
import io
import logging

import pytest

from inflor import logs
from inflor.train import trainer as tr


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))


@pytest.fixture
def collect():
    h = Collect()
    logging.getLogger("inflor").addHandler(h)
    yield h
    logging.getLogger("inflor").removeHandler(h)


def test_default_handler_prints_the_bare_line(capsys):
    logs.progress("epoch 1/2  loss 0.5 (x%)")
    logs.warning("inflor repeat: seed 3 failed: boom")
    assert capsys.readouterr().out == "epoch 1/2  loss 0.5 (x%)\ninflor repeat: seed 3 failed: boom\n"


def test_follows_a_redirected_stdout():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        logs.progress("to the buffer")
    assert buf.getvalue() == "to the buffer\n"


def test_the_logger_can_be_taken_over(capsys, collect):
    log = logging.getLogger("inflor")
    log.removeHandler(logs.DEFAULT_HANDLER)
    try:
        logs.progress("only in the handler")
        assert capsys.readouterr().out == ""
        log.setLevel(logging.WARNING)
        logs.progress("dropped")
        logs.warning("kept")
    finally:
        log.addHandler(logs.DEFAULT_HANDLER)
        log.setLevel(logging.INFO)
    assert collect.records == [("INFO", "only in the handler"), ("WARNING", "kept")]
    assert not log.propagate and log.handlers.count(logs.DEFAULT_HANDLER) == 1


def test_the_trainer_logs_through_it_unless_given_log(tmp_path, collect, capsys):
    """Trainer's default ``log`` is the logger; a ``log=`` callable still takes its place."""
    mine = []
    tr.Trainer({}, tmp_path).log("run x: by the logger")
    tr.Trainer({}, tmp_path, log=mine.append).log("run x: by the callable")
    assert collect.records == [("INFO", "run x: by the logger")]
    assert mine == ["run x: by the callable"]
    assert capsys.readouterr().out == "run x: by the logger\n"
