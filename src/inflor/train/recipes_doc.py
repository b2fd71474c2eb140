"""Moved to ``inflor.config.docs``; this module re-exports every name of it (private helpers too,
which ``inflor.analysis.reproduction`` uses) and ``python -m inflor.train.recipes_doc`` still runs it."""
import sys

from inflor.config import docs as _docs

globals().update({k: v for k, v in vars(_docs).items() if not k.startswith("__")})

if __name__ == "__main__":
    sys.exit(_docs.main())
