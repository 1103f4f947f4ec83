"""Inputs → jobs for ``unetblur blur``: what an input is, every output and sidecar name, the shard a
process takes, and the overwrite rules (nothing a run writes may be an input; two jobs never share a file).

Naming lives only here: ``<stem>_blurred<ext>`` beside each input (or in ``-o``), ``<folder>_blurred/``
for a folder, ``webcam0_blurred.mp4`` / ``<host>_blurred.mp4`` for live sources, and the
``--save-masks`` / ``--save-json`` sidecars beside an output (:func:`sidecar`).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import BadInputError, UnetblurError
from ..fsutil import same_file
from ..io import IMAGE_EXTENSIONS, is_image_path
from ..video import VIDEO_EXTENSIONS, is_stream_url, is_video_path, parse_webcam
from .config import BlurConfig


#: Suffix added to an output's stem when it is written beside (or named after) its input.
OUTPUT_SUFFIX = "_blurred"
KINDS = ("image", "video", "folder", "webcam", "stream")

#: The sidecar files ``--save-masks`` ("mask") and ``--save-json`` ("json") add beside an output, by job kind.
SIDECARS = {("image", "mask"): "_mask.png", ("video", "mask"): "_mask.mp4",
            ("image", "json"): ".json", ("video", "json"): ".jsonl"}

#: Environment variables that name a process's rank / world size under common launchers
#: (torchrun and Lightning set RANK/WORLD_SIZE, SLURM sets SLURM_PROCID/SLURM_NTASKS).
_RANK_VARS = (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE"))


def input_kind(text: str) -> str:
    """One of :data:`KINDS` for an input argument; raises :class:`BadInputError` when it is none."""
    if parse_webcam(text) is not None:
        return "webcam"
    if is_stream_url(text):
        return "stream"
    path = Path(text)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise BadInputError(path, "not found (expected an image, a video, a folder, webcam[:N] or a stream URL)")
    if is_image_path(path):
        return "image"
    if is_video_path(path):
        return "video"
    raise BadInputError(path, f"unsupported file type {path.suffix or '(none)'}; images: "
                              f"{' '.join(IMAGE_EXTENSIONS)}; videos: {' '.join(VIDEO_EXTENSIONS)}")


def iter_media(root: str | os.PathLike, recursive: bool = False,
               skip: str | os.PathLike | Iterable[str | os.PathLike] | None = None) -> Iterator[Path]:
    """Image and video files under ``root`` in sorted order, streamed (a folder of 10,000 files is
    never listed at once). Hidden files and folders (our temporaries) are skipped, and so are the
    folders in ``skip`` (output folders lying inside the input folder)."""
    root = Path(root)
    if skip is None:
        skip = []
    elif isinstance(skip, (str, os.PathLike)):
        skip = [skip]
    skip_real = {os.path.realpath(d) for d in skip}
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.realpath(dirpath) in skip_real:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if not name.startswith(".") and (is_image_path(name) or is_video_path(name)):
                yield Path(dirpath) / name


def default_output(input_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                   suffix: str | None = None) -> Path:
    """``<stem>_blurred<ext>`` beside the input, or inside ``out_dir``; ``suffix`` replaces the extension."""
    p = Path(input_path)
    name = f"{p.stem}{OUTPUT_SUFFIX}{suffix if suffix is not None else p.suffix}"
    return (Path(out_dir) if out_dir is not None else p.parent) / name


def stream_output_name(text: str) -> str:
    """A file name for the recording of a webcam or stream: ``webcam0_blurred.mp4``, ``<host>_blurred.mp4``."""
    cam = parse_webcam(text)
    if cam is not None:
        return f"webcam{cam}{OUTPUT_SUFFIX}.mp4"
    host = re.sub(r"[^A-Za-z0-9]+", "_", str(text).split("://", 1)[-1].split("/", 1)[0]).strip("_") or "stream"
    return f"{host}{OUTPUT_SUFFIX}.mp4"


def sidecar(output: str | os.PathLike, kind: str, what: str) -> Path:
    """The ``what`` ("mask" | "json") sidecar of a ``kind`` ("image" | "video") job's ``output``."""
    output = Path(output)
    return output.with_name(output.stem + SIDECARS[(kind, what)])


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` → (i, n); ``"auto"`` → from RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS; None → None."""
    if text is None or text == "":
        return None
    if text == "auto":
        for rank_var, size_var in _RANK_VARS:
            if rank_var in os.environ and size_var in os.environ:
                return parse_shard(f"{os.environ[rank_var]}/{os.environ[size_var]}")
        return None  # a single process: everything
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise UnetblurError(f"shard {text!r} is not of the form i/n (e.g. 0/4) or auto") from None
    if n < 1 or not 0 <= i < n:
        raise UnetblurError(f"shard {text!r}: need 0 ≤ i < n")
    return i, n


@dataclass(frozen=True)
class Job:
    kind: str          # image | video | webcam | stream
    source: str
    output: Path | str


def _output_is_file(cfg: BlurConfig) -> bool:
    """Whether ``-o`` names a file: only a media file name does (``out_cf0.5``, ``v1.2`` are folders)."""
    if not cfg.output or "://" in cfg.output:
        return False
    out = Path(cfg.output)
    return not out.is_dir() and _is_media_name(out)


def _local_inputs(cfg: BlurConfig) -> list[str]:
    return [t for t in cfg.inputs if not is_live(t)]


def is_live(text: str) -> bool:
    """Whether an input is a webcam or a stream URL (not a path)."""
    return parse_webcam(text) is not None or is_stream_url(text)


def plan_jobs(cfg: BlurConfig, skipped: list) -> Iterator[Job]:
    """Jobs for every input, lazily (folders are walked as they are processed). Unusable inputs
    are appended to ``skipped`` as (input, reason). Raises :class:`UnetblurError` (exit 2, before
    anything is written) when ``-o`` cannot work: a file name for several inputs or a folder, the
    input folder itself, or two inputs that would be written to the same place."""
    out, out_is_file, roots, skip_dirs = output_layout(cfg)
    _refuse_shared_targets(cfg, roots, out, out_is_file)
    for text in cfg.inputs:
        try:
            kind = input_kind(text)
        except BadInputError as exc:
            skipped.append((exc.path, exc.problem))
            continue
        if kind in ("webcam", "stream"):
            target = cfg.output if cfg.output and "://" in cfg.output else (
                out if out_is_file else (out or Path.cwd()) / stream_output_name(text))
            yield Job(kind, text, target)
        elif kind == "folder":
            src, root = Path(text), roots[text]
            for path in iter_media(src, cfg.recursive, skip=skip_dirs):
                rel = path.relative_to(src)
                yield Job("image" if is_image_path(path) else "video", str(path), root / rel)
        else:
            target = out if out_is_file else default_output(text, out)
            yield Job(kind, text, target)


def output_layout(cfg: BlurConfig) -> tuple[Path | None, bool, dict[str, Path], list[Path]]:
    """Where a run writes: (``-o`` as a path or None, whether it is a file, the output folder of each
    folder input, the folders a walk must never enter because the run writes there)."""
    out = Path(cfg.output) if cfg.output and "://" not in cfg.output else None
    single = len(cfg.inputs) == 1
    out_is_file = _output_is_file(cfg)
    if out_is_file and not single:
        raise UnetblurError(f"-o {out}: with several inputs, -o must be a folder (got a file name)")
    folders = [Path(t) for t in _local_inputs(cfg) if Path(t).is_dir()]
    roots = {}
    for folder in folders:
        if out_is_file:
            raise UnetblurError(f"{out}: a folder input needs an output folder, not a file name")
        if out is not None and os.path.realpath(out) == os.path.realpath(folder):
            raise UnetblurError(f"-o {out}: is the input folder {folder}; outputs would mix with (and could "
                                "replace) the inputs: choose another output folder")
        if out is None:
            roots[str(folder)] = folder.resolve().parent / f"{folder.resolve().name}{OUTPUT_SUFFIX}"
        else:
            roots[str(folder)] = out if single else out / folder.resolve().name
    # Never walk into what this run writes: the output folder of every input, and -o itself.
    skip_dirs = [*roots.values(), *([out] if out is not None and not out_is_file else [])]
    return out, out_is_file, roots, skip_dirs


def _refuse_shared_targets(cfg: BlurConfig, roots: dict, out: Path | None, out_is_file: bool) -> None:
    """Stop before writing when two inputs given on the command line map to one output (the same
    file name from two folders into one ``-o``, two folders of the same name): one result would be
    lost while the summary counted both."""
    seen: dict[str, str] = {}
    for text in _local_inputs(cfg):
        if text in roots:
            target = roots[text]
        else:
            try:
                if input_kind(text) not in ("image", "video"):
                    continue
            except BadInputError:
                continue
            target = out if out_is_file else default_output(text, out)
        key = os.path.realpath(target)
        if key in seen and os.path.realpath(seen[key]) != os.path.realpath(text):
            raise UnetblurError(f"{seen[key]} and {text} would both be written to {target}; rename one, or "
                                "blur them into separate output folders")
        seen[key] = text


def _is_media_name(path: Path) -> bool:
    return is_image_path(path) or is_video_path(path)


def planned_writes(job: Job, cfg: BlurConfig) -> list[Path]:
    """Every file ``job`` writes: its output and the sidecars ``--save-masks`` / ``--save-json`` add."""
    if isinstance(job.output, str):
        return []  # a re-stream URL
    output = Path(job.output)
    writes = [output]
    if job.kind in ("image", "video"):
        if cfg.save_masks:
            writes.append(sidecar(output, job.kind, "mask"))
        if cfg.save_json:
            writes.append(sidecar(output, job.kind, "json"))
    return writes


class OutputGuard:
    """What a run may write. Nothing it writes (output or sidecar) may resolve to one of its inputs,
    directly, through a link or another spelling; an existing file needs ``overwrite``; and no two
    jobs of the run may write the same file (one result would silently replace the other)."""

    def __init__(self, cfg: BlurConfig, skip_dirs: Iterable[os.PathLike] = ()):
        self.cfg = cfg
        self.files = set()
        self.folders = []
        for text in _local_inputs(cfg):
            with contextlib.suppress(OSError):
                if os.path.isdir(text):
                    self.folders.append(os.path.realpath(text))
                elif os.path.exists(text):
                    st = os.stat(text)
                    self.files.add((st.st_dev, st.st_ino))
        self.skip = [os.path.realpath(d) for d in skip_dirs]
        self.claimed: dict[str, str] = {}

    def _is_input(self, path: Path) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False  # nothing there (or unreadable): not an input
        if (st.st_dev, st.st_ino) in self.files:
            return True
        real = os.path.realpath(path)
        if any(real == s or real.startswith(s + os.sep) for s in self.skip):
            return False
        for folder in self.folders:
            rel = os.path.relpath(real, folder)
            if rel == os.curdir or rel.startswith(os.pardir):
                continue
            parts = rel.split(os.sep)
            if (self.cfg.recursive or len(parts) == 1) and not any(p.startswith(".") for p in parts) \
                    and _is_media_name(Path(real)):
                return True  # a file the folder walk reads
        return False

    def check(self, job: Job) -> None:
        """Raise :class:`BadInputError` (the job is skipped) when ``job`` may not write what it would;
        otherwise claim its files for this run."""
        writes = planned_writes(job, self.cfg)
        for path in writes:
            what = "output" if path == writes[0] else "sidecar"
            if same_file(job.source, path) or os.path.realpath(job.source) == os.path.realpath(path):
                raise BadInputError(job.source, f"{what} {path} would overwrite the input; choose another -o")
            if self._is_input(path):
                raise BadInputError(job.source, f"{what} {path} would overwrite another input of this run; "
                                                "choose another -o")
            owner = self.claimed.get(os.path.realpath(path))
            if owner is not None:
                raise BadInputError(job.source, f"{what} {path} is also written for {owner}; rename one of them "
                                                "or blur them into separate folders")
            if path.exists() and not self.cfg.overwrite:
                raise BadInputError(job.source, f"{what} {path} exists; pass --overwrite to replace it")
        for path in writes:
            self.claimed[os.path.realpath(path)] = job.source


def check_output(job: Job, overwrite: bool) -> None:
    """Refuse to overwrite the job's input (also through a symlink or another spelling) or an existing
    output. :class:`OutputGuard` does this for a whole run, sidecars and other inputs included."""
    from dataclasses import replace

    OutputGuard(replace(BlurConfig(), inputs=(job.source,), overwrite=overwrite)).check(job)
