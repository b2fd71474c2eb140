"""YAML in and out for configs: ``1e-4`` read as a number (YAML 1.2), unreadable files or bad
YAML reported as a user error naming the file, configs written in schema order."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from inflor.errors import ConfigError

__all__ = ["yaml_load", "read_yaml", "dump_config"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``5E3`` (no dot) as floats, like YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


CONFIG_EXPECTED = "a YAML mapping of config sections (model, data, optim, train, ...)"


def read_yaml(path: Path, what: str, error: type = ConfigError, expected: str = CONFIG_EXPECTED) -> Any:
    """The YAML document in ``path``; an unreadable file or bad YAML raises ``error`` naming
    ``what`` (e.g. "recipe") and the file, and saying what was ``expected``."""
    try:
        return yaml_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{what} {path} is not valid YAML: {problem}{where}; expected {expected}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not a text file (not UTF-8); expected {expected}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None


def dump_config(cfg: dict) -> str:
    """YAML text of a config (keys in schema order, readable)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=100)
