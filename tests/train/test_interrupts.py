"""SIGINT / SIGTERM handling of the training loop (inflor.train.interrupts)."""
import os
import signal

import pytest

from inflor.train.interrupts import Interrupted, Interrupts


def test_a_signal_raises_interrupted_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info:
        with Interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
    assert info.value.signum == signal.SIGTERM and str(info.value) == "SIGTERM"
    assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before


def test_deferred_holds_the_signal_until_the_block_ends():
    done = []
    with pytest.raises(Interrupted) as info:
        with Interrupts() as interrupts:
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("the block finished")      # not cut short
    assert done == ["the block finished"] and info.value.signum == signal.SIGINT


def test_a_second_signal_does_not_wait():
    done = []
    with pytest.raises(Interrupted):
        with Interrupts() as interrupts:
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("not reached")
    assert done == []


def test_a_block_that_raises_keeps_its_own_error():
    with pytest.raises(ValueError):
        with Interrupts() as interrupts:
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                raise ValueError("the block's own failure wins")
