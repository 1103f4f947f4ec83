"""User-facing errors and the exit codes every command shares.

Exit codes (documented in the README):
  0  success
  1  completed, but some inputs were skipped or a check found problems
  2  usage or input error (nothing useful was produced)
  3  internal error (a bug; UNETBLUR_DEBUG=1 shows the traceback)
  130 / 143  interrupted by Ctrl-C / terminated by SIGTERM (temporaries removed, nothing half-written)
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: object) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``): a message stays one
    line on a terminal and in logs, whatever file name or foreign error text it quotes."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def quote_path(path: object) -> str:
    """A path as messages show it: as is, or quoted like Python does when it holds control characters
    (a file name with a newline is then visibly one name)."""
    text = str(path)
    return repr(text) if _CONTROL.search(text) else text


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of a foreign exception's message (ONNX Runtime, torch, Pillow write
    several), else its type name."""
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:limit]


class UnetblurError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2.

    The message says what was wrong, the value, and what to do.
    """

    exit_code = EXIT_USAGE

    def __str__(self) -> str:
        return one_line(super().__str__())


class UnusableModelOutput(UnetblurError):
    """A model returned something that is not an image or a probability (NaN, inf, out of range, a
    missing mask channel). Whatever it would have blurred is unknown, so callers fail closed: the
    image is not written, the video is skipped, a stream frame goes out black."""


class BadInputError(UnetblurError):
    """A single input file cannot be used. Batch commands skip it and report it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{quote_path(self.path)}: {problem}")
