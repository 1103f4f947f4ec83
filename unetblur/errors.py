"""User-facing errors and the exit codes every command shares.

Exit codes (documented in the README):
  0  success
  1  completed, but some inputs were skipped or a check found problems
  2  usage or input error (nothing useful was produced)
  3  internal error (a bug; UNETBLUR_DEBUG=1 shows the traceback)
  130 / 143  interrupted by Ctrl-C / terminated by SIGTERM (temporaries removed, nothing half-written)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UnetblurError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2.

    The message says what was wrong, the value, and what to do.
    """

    exit_code = EXIT_USAGE


class UnusableModelOutput(UnetblurError):
    """A model returned something that is not an image or a probability (NaN, inf, out of range, a
    missing mask channel). Whatever it would have blurred is unknown, so callers fail closed: the
    image is not written, the video is skipped, a stream frame goes out black."""


class BadInputError(UnetblurError):
    """A single input file cannot be used. Batch commands skip it and report it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
