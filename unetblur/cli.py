"""``unetblur`` command line: a thin shell. Each verb parses flags into one config and calls one
library function; the verbs live in ``unetblur/commands/<verb>.py``.

Command modules must import cheaply (no torch at import time): heavy imports go inside ``run``.
Errors never print a traceback: a :class:`UnetblurError` prints one line and exits 2; anything
unexpected prints one line too (set ``UNETBLUR_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import threading

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, UnetblurError

#: Verb → module under unetblur.commands, in the order ``--help`` lists them.
COMMANDS = ("data", "train", "prune", "distill", "export", "bench", "compare", "privacy", "plot", "tables", "blur", "demo",
            "thesis")


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
            if exc.name == f"unetblur.commands.{name}":
                continue  # verb not built yet
            # A dependency of this verb is missing (a Raspberry Pi without torch): the other verbs
            # still work and this one says what to install when it is used.
            _register_unavailable(sub, name, exc.name or str(exc))
            continue
        module.register(sub)
    return parser


def _register_unavailable(sub, name: str, missing: str) -> None:
    def run(args):
        raise UnetblurError(f"`unetblur {name}` needs the Python package {missing!r}, which is not installed; "
                            "install the training extras: pip install 'unetblur[train]'")

    # No option prefix: every flag the user typed is swallowed, so the message below is what they see.
    p = sub.add_parser(name, help=f"(unavailable: needs {missing})", add_help=False, prefix_chars="\x01")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so ``with`` blocks run and temporaries are removed.

    A BaseException so that batch loops catching ``Exception`` per file do not swallow it.
    """


def _on_sigterm(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc)
    hint = {errno.ENOSPC: "; free some disk space and run again",
            errno.EACCES: "; check the file permissions",
            errno.EROFS: "; write the output somewhere writable"}.get(exc.errno, "")
    return f"{where}{what}{hint}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with _sigterm_raises():
            code = args.func(args)
        return int(code or 0)
    except UnetblurError as exc:
        print(f"unetblur: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("unetblur: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("unetblur: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # The reader went away (`unetblur ... | head`): nothing left to say to it.
        with contextlib.suppress(OSError):
            sys.stderr.flush()
        return 141
    except MemoryError:
        print("unetblur: error: out of memory; use smaller images or batches "
              "(UNETBLUR_MAX_PIXELS bounds the image size)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        # Disk full, permission denied, read-only folder: the environment, not a bug.
        if os.environ.get("UNETBLUR_DEBUG"):
            raise
        print(f"unetblur: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a traceback for users
        if os.environ.get("UNETBLUR_DEBUG"):
            raise
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:300]
        print(f"unetblur: internal error: {type(exc).__name__}: {first} (set UNETBLUR_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
