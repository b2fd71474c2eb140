"""``python -m inflor ...`` (and ``torchrun -m inflor train ...``): the ``inflor`` command line."""
import sys

from inflor.cli import main

if __name__ == "__main__":
    sys.exit(main())
