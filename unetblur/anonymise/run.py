"""``anonymise(config)``: the library behind ``unetblur blur``, run over every input of a config.

Inputs: image files, folders (optionally recursive, the tree kept), video files (audio kept),
``webcam[:N]`` and ``rtsp://`` / ``http://`` streams. Any :class:`~unetblur.runtime.base.Blurrer`
does the work (:mod:`.config` chooses it); :mod:`.plan` turns inputs into jobs and names every output;
:mod:`.frames` holds the loop of each kind of input.

Safety rules, all enforced in this package:
* an input is never overwritten (also not through a symlink or another spelling of its path);
  an existing output needs ``overwrite``;
* every output is written to a hidden temporary name and renamed when complete;
* a stream is anonymised **fail closed**: the model is warmed on a blank frame before the output
  opens, and a frame whose inference fails is written black, never passed through;
* a bad file in a batch is skipped and listed in the summary (exit code 1).

Scale: image batches run on a thread pool (ONNX Runtime and OpenCV release the GIL); videos decode
and encode in ffmpeg processes fed by a reader and a writer thread around inference. Folders are
walked lazily, so memory stays flat on 10,000 files. ``shard="i/n"`` processes every n-th file
starting at i, so n machines (or n ranks of a distributed job) split a dataset with no coordination.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_FINDINGS, EXIT_OK, BadInputError, UnetblurError, first_line, one_line, quote_path
from ..fsutil import same_file
from .config import BlurConfig, open_blurrer_for
from .frames import _progress, blur_image_file, blur_stream, blur_video_file
from .plan import OutputGuard, is_live, output_layout, parse_shard, plan_jobs


@dataclass
class Summary:
    """What a run did: outputs written, inputs skipped (with the reason), frames and time."""

    written: list[tuple[str, str]] = field(default_factory=list)   # (input, output)
    existing: list[tuple[str, str]] = field(default_factory=list)  # (input, output) left alone (skip_existing)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (input, problem): written, but incomplete
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (input, reason)
    frames: int = 0
    black_frames: int = 0          # streams: frames blacked out because inference failed (fail closed)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        # A blacked-out stream frame is a failure the viewer saw: never report it as success.
        return EXIT_FINDINGS if self.skipped or self.problems or self.black_frames else EXIT_OK

    def format(self) -> str:
        lines = [f"{len(self.written)} written, {len(self.skipped)} skipped"
                 + (f", {len(self.existing)} already done" if self.existing else "")
                 + (f", {self.frames} frames" if self.frames else "")
                 + (f", {self.black_frames} frames blacked out (inference failed)" if self.black_frames else "")
                 + f" in {self.seconds:.1f} s"]
        lines += [f"  note: {one_line(n)}" for n in self.notes]
        # One line per entry whatever a file name holds (a newline in a name is shown quoted).
        if self.problems:
            lines.append("problems:")
            lines += [f"  {quote_path(path)}: {one_line(problem)}" for path, problem in self.problems]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {quote_path(path)}: {one_line(reason)}" for path, reason in self.skipped]
        return "\n".join(lines)


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _check(cfg: BlurConfig) -> None:
    """Refuse, before anything is opened, a config no input could run with."""
    if not cfg.inputs:
        raise UnetblurError("no input given; pass image files, folders, videos, webcam[:N] or a stream URL")
    for name, value in (("workers", cfg.workers), ("threads", cfg.threads), ("max_frames", cfg.max_frames),
                        ("hold_frames", cfg.hold_frames)):
        if value is not None and value < (0 if name == "hold_frames" else 1):
            raise UnetblurError(f"{name} must be at least {0 if name == 'hold_frames' else 1}, got {value}")
    if cfg.output and "://" in cfg.output and not all(is_live(t) for t in cfg.inputs):
        raise UnetblurError(f"-o {cfg.output}: re-streaming to a URL works for webcam/stream inputs only")


def _skip_reason(exc: BaseException) -> str:
    """Why a batch skipped a file, in one line."""
    if isinstance(exc, BadInputError):
        return exc.problem
    if isinstance(exc, UnetblurError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory for this image"
    return f"failed ({type(exc).__name__}: {first_line(exc, 160)})"


class _ImagePool:
    """Images run on a thread pool with at most ~2×workers in flight: a folder of 10,000 never queues
    10,000 futures. Each finished image lands in the summary as written or skipped."""

    def __init__(self, workers: int, summary: Summary, progress: bool):
        self.workers, self.summary = workers, summary
        self.pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unetblur-image")
        self.pending: dict = {}
        self.bar = _progress(progress, desc="images", unit="img")

    def submit(self, job, *args) -> None:
        self.pending[self.pool.submit(blur_image_file, *args)] = job
        self.drain(2 * self.workers)

    def drain(self, block_until: int = 0) -> None:
        while len(self.pending) > block_until:
            done, _ = cf.wait(list(self.pending), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                job = self.pending.pop(fut)
                try:
                    fut.result()
                    self.summary.written.append((job.source, str(job.output)))
                except Exception as exc:  # noqa: BLE001 - a batch skips a file it cannot process
                    self.summary.skipped.append((str(job.source), _skip_reason(exc)))
                self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _run_sequential(job, blurrer, cfg: BlurConfig, summary: Summary) -> None:
    """A video, webcam or stream: one at a time, every core for its frames."""
    try:
        if job.kind == "video":
            frames, notes = blur_video_file(blurrer, job.source, job.output, cfg, problems=summary.problems)
            summary.notes += notes
        else:
            frames = blur_stream(blurrer, job.source, job.output, cfg, summary)
        summary.frames += frames
        summary.written.append((job.source, str(job.output)))
    except BadInputError as exc:
        summary.skipped.append((str(exc.path), exc.problem))
    except UnetblurError as exc:
        if job.kind in ("webcam", "stream"):
            raise  # an unreadable stream is a usage error: one line, exit 2
        summary.skipped.append((str(job.source), str(exc)))


def _finish(cfg: BlurConfig, summary: Summary, jobs_seen: int) -> Summary:
    explicit_file = len(cfg.inputs) == 1 and not Path(cfg.inputs[0]).is_dir()
    if explicit_file and summary.skipped and not summary.written:
        path, reason = summary.skipped[0]
        raise UnetblurError(f"{quote_path(path)}: {reason}")
    if jobs_seen == 0 and not summary.skipped:
        hint = "" if cfg.recursive else " (use --recursive for subfolders)"
        summary.notes.append("no images or videos found" + hint)
    return summary


def anonymise(cfg: BlurConfig, blurrer=None) -> Summary:
    """Anonymise every input of ``cfg``; return a :class:`Summary` (``exit_code`` 1 if anything was skipped).

    ``blurrer``: use this :class:`Blurrer` instead of opening ``cfg.model`` (library use, tests).
    A run with exactly one input file that cannot be processed raises :class:`UnetblurError`
    (one line, exit 2) instead of returning a summary.
    """
    _check(cfg)
    shard = parse_shard(cfg.shard)
    workers = cfg.workers or _default_workers()
    threads = cfg.threads
    batch = len(cfg.inputs) > 1 or any(Path(t).is_dir() for t in cfg.inputs if not is_live(t))
    if threads is None and batch and workers > 1:
        threads = max(1, _default_workers() // workers)  # one pool of cores, not workers × threads
    if blurrer is None:
        blurrer = open_blurrer_for(cfg, threads)
    summary = Summary()
    start = time.perf_counter()
    jobs_seen = 0
    images = _ImagePool(workers, summary, cfg.progress and batch)
    try:
        skipped_at_plan: list = []
        guard = OutputGuard(cfg, output_layout(cfg)[3])
        for index, job in enumerate(plan_jobs(cfg, skipped_at_plan)):
            summary.skipped += [(str(path), reason) for path, reason in skipped_at_plan]
            skipped_at_plan.clear()
            if shard is not None and index % shard[1] != shard[0]:
                continue
            jobs_seen += 1
            if cfg.skip_existing and isinstance(job.output, Path) and job.output.exists() \
                    and not same_file(job.source, job.output):
                summary.existing.append((job.source, str(job.output)))
                continue
            try:
                guard.check(job)
            except BadInputError as exc:
                summary.skipped.append((str(exc.path), exc.problem))
                continue
            if job.kind == "image":
                images.submit(job, blurrer, job.source, job.output, cfg)
                continue
            images.drain()  # finish pending images before a video takes every core
            _run_sequential(job, blurrer, cfg, summary)
        summary.skipped += [(str(path), reason) for path, reason in skipped_at_plan]
        images.drain()
    finally:
        images.close()
    summary.seconds = time.perf_counter() - start
    return _finish(cfg, summary, jobs_seen)
