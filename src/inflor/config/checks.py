"""Checks of the structured config values that pydantic's plain types do not express (Adam's
betas, MPD's terms, snapshot epochs, activation checkpointing, paper tables and notes, option
mappings): each takes (dotted key, value), returns the value as the run uses it or raises
``ConfigError`` naming the key, what was expected and what it got; ``check.doc`` is the "values"
column of the table in docs/training.md."""
from __future__ import annotations

import difflib

from inflor.epochspec import check_spec
from inflor.errors import ConfigError

__all__ = ["NOTE_TOPICS"]


def _fmt(v) -> str:
    return repr(v)


def _mpd_terms(key, v):
    if not isinstance(v, str) or not v or set(v.upper()) - set("DSM") or len(set(v.upper())) != len(v):
        raise ConfigError(f"'{key}' must be a non-empty combination of the letters D (degeneration), "
                          f"S (saturation), M (gradient mismatch), e.g. DSM or D; got {_fmt(v)}")
    return "".join(t for t in "DSM" if t in v.upper())


_mpd_terms.doc = "letters of DSM"


def _betas(key, v):
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v)):
        raise ConfigError(f"'{key}' must be a list of two numbers in [0, 1), got {_fmt(v)}")
    return [float(b) for b in v]


_betas.doc = "[b1, b2]"


def _snapshots(key, v):
    if isinstance(v, (list, tuple)):
        v = ",".join(str(x) for x in v)
    try:
        return check_spec(v)
    except ValueError as e:
        raise ConfigError(f"'{key}': {e}") from None


_snapshots.doc = "epoch list such as '0,1,last', 'every:N', 'all' or null"


def _act_ckpt(key, v):
    if v is None or v is False:
        return None
    if v == "blocks" or (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
        return v
    raise ConfigError(f"'{key}' must be null, 'blocks' (every conv-norm-neuron unit and residual block) or a "
                      f"list of module paths such as [layer1, layer2]; got {_fmt(v)}")


_act_ckpt.doc = "null | blocks | [module paths]"


def _table(key, v):
    if v is None or isinstance(v, (int, str)) and not isinstance(v, bool):
        return v
    raise ConfigError(f"'{key}' must be a table number or name, got {_fmt(v)}")


_table.doc = "int | string"


def _open_dict(key, v):
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"'{key}' must be a mapping of options, got {_fmt(v)}")
    return v


_open_dict.doc = "mapping (checked by the model / dataset)"

#: The topics ``paper.notes`` may name, each with where that hyper-parameter comes from (the
#: paper's statement, or the code followed where the paper is silent). Shipped paper recipes give
#: every topic (``precision`` only where they use AMP); tests/test_recipes_protocols.py checks it.
#: ``warm_start`` only where the recipe has ``stages`` (where its starting weights come from).
NOTE_TOPICS = ("network", "neuron", "surrogate", "norm", "loss", "timesteps", "optimizer", "schedule",
               "epochs", "batch", "augmentation", "data", "split", "seed", "warm_start", "precision")


def _notes(key, v):
    if v is None or isinstance(v, str):
        return v
    if not isinstance(v, dict):
        raise ConfigError(f"'{key}' must be a string or a mapping of topic: text, got {_fmt(v)}")
    for topic, text in v.items():
        if topic not in NOTE_TOPICS:
            hint = difflib.get_close_matches(str(topic), NOTE_TOPICS, n=1)
            raise ConfigError(f"unknown topic {topic!r} in '{key}'; valid topics: {', '.join(NOTE_TOPICS)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"'{key}.{topic}' must be a non-empty string, got {_fmt(text)}")
    return dict(v)


_notes.doc = "string, mapping of topic: text, or null"
