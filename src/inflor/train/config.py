"""Run configuration: moved to ``inflor.config`` (schema, overrides, recipes, docs generation).
This module re-exports it so ``from inflor.train.config import load_config`` keeps working."""
from inflor.config import *  # noqa: F401,F403
from inflor.config import __all__  # noqa: F401
