"""Epoch lists such as ``"0,1,last"``, ``"every:10"``, ``"all"``: which epochs a run records
snapshots at (``train.snapshots``). A leaf module: the config checks a spec's format with it and
``inflor.analysis.snapshot`` uses it to pick the epochs, without either importing the other."""
from __future__ import annotations

from typing import Sequence

__all__ = ["snapshot_epochs", "check_spec"]


def snapshot_epochs(spec: "str | Sequence[int] | None", num_epochs: int, strict: bool = True) -> set[int]:
    """Parse ``"0,1,last"`` (also ``"all"``, ``"none"``, ``"every:10"``) into epoch counts in
    ``0 .. num_epochs`` (0 = before training, e = after e finished epochs). An epoch outside that
    range raises ``ValueError``, or is left out when ``strict`` is False."""
    if spec is None:
        return set()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: set[int] = set()
    for item in items:
        s = str(item).strip().lower()
        if s in ("", "none"):
            continue
        if s == "last":
            out.add(num_epochs)
        elif s == "all":
            out.update(range(num_epochs + 1))
        elif s.startswith("every:"):
            try:
                step = int(s.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"bad snapshot epoch {item!r}: 'every:N' needs a whole number N, e.g. every:10") from None
            if step < 1:
                raise ValueError(f"snapshot step must be >= 1, got {step}")
            out.update(range(0, num_epochs + 1, step))
            out.add(num_epochs)
        else:
            try:
                e = int(s)
            except ValueError:
                raise ValueError(f"bad snapshot epoch {item!r}: use integers, 'last', 'all', 'none' "
                                 f"or 'every:N', comma separated") from None
            if not 0 <= e <= num_epochs:
                if not strict:
                    continue
                raise ValueError(f"snapshot epoch {e} is outside 0..{num_epochs}")
            out.add(e)
    return out


def check_spec(spec) -> str | None:
    """Validate the format of an epoch spec (for config checks); returns it as a string."""
    if spec is None:
        return None
    spec = str(spec)
    snapshot_epochs(spec, 10 ** 9)
    return spec
