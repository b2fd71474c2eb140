"""SIGINT (Ctrl-C) and SIGTERM (a scheduler's or torchrun's stop) during training.

While a ``Interrupts`` block is active (the trainer's ``fit``), both signals raise
``Interrupted`` in the main thread, so the run can write its summary and say how to continue,
except inside ``deferred()`` blocks (an epoch's bookkeeping and checkpoint writes), where the
signal is held until the block ends: the run stops between two consistent states, never with
the metrics of an epoch recorded but its checkpoint not written. A second signal while one is
held interrupts at once (the atomic checkpoint writer still leaves the previous file intact).
Outside the main thread (where Python cannot install handlers) nothing changes.
"""
from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Interrupted", "Interrupts"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``signum`` is its number (exit status 128 + signum)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)


class Interrupts:
    """Context manager turning SIGINT / SIGTERM into ``Interrupted`` (see the module docstring)."""

    def __init__(self):
        self._old: dict = {}
        self._holding = 0
        self._pending: int | None = None

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}
        return False

    def _handle(self, signum, frame) -> None:
        if self._holding and self._pending is None:
            self._pending = signum
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        """Hold a signal that arrives inside the block; raise ``Interrupted`` when it ends (unless
        the block itself raised)."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None:
            signum, self._pending = self._pending, None
            raise Interrupted(signum)
