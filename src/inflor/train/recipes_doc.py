"""Moved to ``inflor.config.docs``; ``python -m inflor.train.recipes_doc`` still runs it."""
import sys

from inflor.config.docs import *  # noqa: F401,F403
from inflor.config.docs import main, render, render_readme_commands, render_schema, with_readme_commands, with_schema  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
