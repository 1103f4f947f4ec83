"""Filesystem helpers: atomic writes so an interrupted command never leaves a half-written file."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UnetblurError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the real suffix (encoders pick the format from it) and starts with
    ``.`` so folder listings skip it. On any exception the temporary file is removed.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise UnetblurError(f"{path}: output exists; pass --overwrite to replace it")
    if path.is_dir():
        raise UnetblurError(f"{path}: is a folder; give a file name for this output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries_once(path.parent)
        # The pid in the name lets a later run tell a temporary of a killed process (safe to delete)
        # from one a live process is still writing; the host, that the pid is one of this machine's.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{_owner()}-", suffix=f".part{path.suffix}",
                                   dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UnetblurError(f"{path}: cannot write here ({exc.strerror or exc}); choose another output") from None
    tmp_path = Path(tmp)
    try:
        # mkstemp creates the file 0600; outputs get the ordinary permissions the umask allows.
        os.chmod(tmp_path, 0o666 & ~_umask())
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if (isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS
                and exc.filename in (None, str(tmp_path), str(path))):
            # Disk full, quota, permissions changed mid-run: name the output, not our temporary.
            raise UnetblurError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO, errno.EACCES, errno.EPERM}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Hidden temporaries made by :func:`atomic_path`: ``.<stem>.<pid>@<host>-<random>.part<suffix>``
#: (names without ``@<host>``, from older versions, count as this host's).
_TEMP_NAME = re.compile(r"^\..*\.(\d+)(?:@([A-Za-z0-9]+))?-[^.]*\.part(\.[^.]*)?$")
_cleaned_dirs: set[str] = set()

#: This machine in temporary names: shards on several machines share output folders, and a pid is
#: only meaningful on the machine that issued it.
HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"


def _owner() -> str:
    return f"{os.getpid()}@{HOST}"


def _is_stale(pid: str, host: str | None) -> bool:
    """A temporary is stale when its process is gone; another machine's is never judged from here."""
    return (host is None or host == HOST) and not _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _stale_entries(folder: str | os.PathLike, pattern: re.Pattern, want_dir: bool) -> list[os.DirEntry]:
    """Entries of ``folder`` (files, or folders with ``want_dir``) whose name ``pattern`` matches with the
    owner's pid (group 1) and host (group 2), and whose owner is a dead process of this host."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    stale = []
    for entry in entries:
        m = pattern.match(entry.name)
        kind_ok = entry.is_dir(follow_symlinks=False) if want_dir else entry.is_file(follow_symlinks=False)
        if m and kind_ok and _is_stale(m.group(1), m.group(2)):
            stale.append(entry)
    return stale


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporaries that :func:`atomic_path` left in ``folder`` when its process was killed
    (SIGKILL, power loss). Temporaries of live processes are kept. Returns what was removed."""
    removed = []
    for entry in _stale_entries(folder, _TEMP_NAME, want_dir=False):
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _remove_stale_temporaries_once(folder: Path) -> None:
    # Once per folder per process: a folder of 10,000 outputs is scanned once, not per file.
    key = os.path.abspath(folder)
    if key not in _cleaned_dirs:
        _cleaned_dirs.add(key)
        remove_stale_temporaries(folder)


def make_work_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """Create a hidden working folder ``<prefix><pid>-<random>`` in ``parent`` and return it.

    Commands that assemble several files before publishing them (``data build``, ``export``) work
    here. Working folders with the same ``prefix`` left by killed processes (SIGKILL, power loss)
    are removed first; those of live processes are kept. ``prefix`` should start with ``.``.
    """
    remove_stale_work_dirs(parent, prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_owner()}-", dir=parent))


def remove_stale_work_dirs(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Delete folders made by :func:`make_work_dir` with ``prefix`` in ``parent`` whose process is
    dead. Returns what was removed."""
    import shutil

    removed = []
    pattern = re.compile(re.escape(prefix) + r"(\d+)(?:@([A-Za-z0-9]+))?-[^/]*$")
    for entry in _stale_entries(parent, pattern, want_dir=True):
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            removed.append(Path(entry.path))
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same existing file (guards against overwriting inputs)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # missing, a symlink loop, unreadable: not a file that could be overwritten
        return False


def overlaps(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are the same path or one lies inside the other (links resolved)."""
    ra, rb = os.path.realpath(a), os.path.realpath(b)
    return ra == rb or ra.startswith(rb.rstrip(os.sep) + os.sep) or rb.startswith(ra.rstrip(os.sep) + os.sep)


def refuse_overlap(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """Raise :class:`UnetblurError` when the folder a command writes (and with ``--overwrite`` replaces)
    is, contains or lies inside one of its ``inputs`` (label → path; None entries are ignored):
    replacing it would delete the input."""
    for label, path in inputs.items():
        if path is not None and overlaps(output, path):
            raise UnetblurError(f"{output}: the output folder and the {label} {path} overlap (one is or contains "
                                "the other), so writing it could delete that input; choose an output outside it")
