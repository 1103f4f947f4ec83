"""``unetblur`` command line: a thin shell. Each verb parses flags into one config and calls one
library function; the verbs live in ``unetblur/commands/<verb>.py``.

Command modules must import cheaply (no torch at import time): heavy imports go inside ``run``.
Errors never print a traceback: a :class:`UnetblurError` prints one line and exits 2; anything
unexpected prints one line too (set ``UNETBLUR_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import EXIT_USAGE, UnetblurError

#: Verb → module under unetblur.commands, in the order ``--help`` lists them.
COMMANDS = ("data", "train", "prune", "distill", "export", "bench", "compare", "plot", "blur", "demo", "thesis")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unetblur", description="Anonymise faces in images and video; train, compress, export "
                     "and compare the U-Nets that do it.")
    parser.add_argument("--version", action="version", version=f"unetblur {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"unetblur.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"unetblur.commands.{name}":
                raise
            continue  # verb not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = args.func(args)
        return int(code or 0)
    except UnetblurError as exc:
        print(f"unetblur: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("unetblur: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a traceback for users
        if os.environ.get("UNETBLUR_DEBUG"):
            raise
        print(f"unetblur: internal error: {type(exc).__name__}: {exc} (set UNETBLUR_DEBUG=1 for details)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
