"""The ``inflor`` command-line tool: ``inflor <command> ...``.

Each command lives in its own module ``inflor.commands.<name>`` exposing
``add_parser(subparsers)`` (which registers the sub-parser and sets ``func``) and is listed in
``COMMANDS`` below. Every command runs through one error path, ``inflor.errors.run_command``: a
user error prints ``inflor <command>: error: <message>`` and exits 1 (2 for a bad recipe,
override or option); ``--debug`` or ``INFLOR_DEBUG=1`` also prints the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["train", "eval", "analyze", "plot", "repeat", "compare", "reproduce", "export"]
DEBUG_HELP = "on an error, also print the traceback (same as INFLOR_DEBUG=1)"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="inflor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"inflor {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.command_parsers = sub.choices       # name (and alias) -> the command's parser
    for name in COMMANDS:
        module = importlib.import_module(f"inflor.commands.{name}")
        # --debug also after the command (inflor train --debug ...); SUPPRESS keeps the main value
        module.add_parser(sub).add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                            help=DEBUG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # dotted.key=value overrides may come after options (inflor train --out DIR lr=...), which
        # argparse alone does not allow once a positional list was consumed
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:   # "inflor train: error: ...", as every other error of the command
            parser.command_parsers.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .errors import run_command
    return run_command(f"inflor {args.command}", args.func, args, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
