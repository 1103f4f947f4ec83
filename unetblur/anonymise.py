"""``anonymise(config)``: the library behind ``unetblur blur``.

Inputs: image files, folders (optionally recursive, the tree kept), video files (audio kept),
``webcam[:N]`` and ``rtsp://`` / ``http://`` streams. Any :class:`~unetblur.runtime.base.Blurrer`
does the work: a U-Net file composited at full resolution (default for ``.onnx`` / ``.pt``), or a
detector baseline (``centerface``, ``haar``).

Safety rules, all enforced here:
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
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .blur import BlurFields
from .errors import EXIT_FINDINGS, EXIT_OK, BadInputError, UnetblurError, first_line, one_line, quote_path
from .fsutil import atomic_path, same_file
from .runtime.temporal import DEFAULT_HOLD_FRAMES

#: Where the experiments stage ships the student model (``--model student``).
PACKAGED_MODEL = Path(__file__).parent / "assets" / "student_int8.onnx"
#: ``--model`` name of the packaged student; it runs at the operating point stored in it.
STUDENT_MODEL = "student"
#: What ``unetblur blur`` runs without ``--model``: the packaged method that wins the full-photo privacy
#: table (experiments/full_photo/table.md: coverage at bg_changed ≤ 2 %). CenterFace until a student beats it.
DEFAULT_MODEL = "centerface"

#: Environment variables that name a process's rank / world size under common launchers
#: (torchrun and Lightning set RANK/WORLD_SIZE, SLURM sets SLURM_PROCID/SLURM_NTASKS).
_RANK_VARS = (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE"))


@dataclass(frozen=True)
class BlurConfig(BlurFields):
    """Settings of ``unetblur blur`` (YAML keys = field names; flags override). The blur itself
    (style, shape, mask_scale, kernel, strength) is :class:`BlurFields`, spelled as in ``data build``."""

    inputs: tuple[str, ...] = ()
    output: str | None = None              # file (one input) or folder; default: beside each input
    model: str | None = None               # centerface[@scale] (default), student, haar, or a .onnx/.pt file
    mode: str = "composite"                # U-Nets: composite (full-res blur, sharp background) or raw (thesis)
    recursive: bool = False
    overwrite: bool = False
    skip_existing: bool = False            # leave existing outputs alone and move on (resume a batch/shard)
    keep_metadata: bool = False
    # Composite settings: None = the model's operating point, else runtime.operating_point.COMPOSITE_DEFAULTS.
    working_size: int | None = None        # longer side the network runs at, larger frames are downscaled for it
                                           # (0: always native; never upscales; default 1920)
    scales: tuple[float, ...] | None = None  # extra passes at these fractions of the working size (default 1)
    threshold: float | None = None         # mask probability that counts as face (default 0.5)
    dilate: int | None = None              # grow the mask by this many pixels (default 0)
    hold_frames: int = DEFAULT_HOLD_FRAMES  # video/streams: keep a lost face blurred this many frames
    save_masks: bool = False
    save_json: bool = False
    codec: str | None = None               # video encoder (default libx264; libvpx-vp9 for .webm)
    crf: int | None = None                 # video quality (lower = better; default 18)
    preset: str | None = None              # x264/x265 speed preset
    audio: bool = True
    threads: int | None = None             # inference threads (None: backend default)
    workers: int | None = None             # images processed in parallel (None: one per core)
    shard: str | None = None               # "i/n" or "auto" (from RANK/WORLD_SIZE or SLURM)
    max_frames: int | None = None          # streams: stop after this many frames
    progress: bool = True


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


# --------------------------------------------------------------------------- model


def resolve_model(spec: str | None) -> str:
    """The model spec to use: ``spec`` (``student`` = the packaged student), else :data:`DEFAULT_MODEL`."""
    spec = str(spec or DEFAULT_MODEL)
    if spec != STUDENT_MODEL:
        return spec
    if PACKAGED_MODEL.is_file():
        return str(PACKAGED_MODEL)
    raise UnetblurError("--model student: no packaged student in this installation; pass --model PATH.onnx (an "
                        "exported student), --model centerface or --model haar")


def open_blurrer_for(cfg: BlurConfig, threads: int | None = None):
    """The :class:`Blurrer` that ``cfg`` describes (U-Nets composited unless ``mode='raw'``)."""
    from .runtime.factory import is_model_spec, open_blurrer

    spec = resolve_model(cfg.model)
    settings = cfg.blur_settings()
    if is_model_spec(spec):
        options = {}
        if cfg.mode == "composite":  # None: the model's operating point decides (runtime.operating_point)
            options = {"working_size": cfg.working_size, "threshold": cfg.threshold, "dilate": cfg.dilate,
                       "scales": tuple(cfg.scales) if cfg.scales is not None else None}
        return open_blurrer(spec, settings, mode=cfg.mode, threads=threads, **options)
    return open_blurrer(spec, settings, threads=threads)


# --------------------------------------------------------------------------- planning


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
    return [t for t in cfg.inputs if not _is_live(t)]


def plan_jobs(cfg: BlurConfig, skipped: list) -> Iterator[Job]:
    """Jobs for every input, lazily (folders are walked as they are processed). Unusable inputs
    are appended to ``skipped`` as (input, reason). Raises :class:`UnetblurError` (exit 2, before
    anything is written) when ``-o`` cannot work: a file name for several inputs or a folder, the
    input folder itself, or two inputs that would be written to the same place."""
    from .media import default_output, input_kind, iter_media, stream_output_name

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
                yield Job("image" if _is_image(path) else "video", str(path), root / rel)
        else:
            target = out if out_is_file else default_output(text, out)
            yield Job(kind, text, target)


def output_layout(cfg: BlurConfig) -> tuple[Path | None, bool, dict[str, Path], list[Path]]:
    """Where a run writes: (``-o`` as a path or None, whether it is a file, the output folder of each
    folder input, the folders a walk must never enter because the run writes there)."""
    from .media import OUTPUT_SUFFIX

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
    from .media import default_output, input_kind

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
    from .media import is_video_path

    return _is_image(path) or is_video_path(path)


def _is_image(path: Path) -> bool:
    from .io import is_image_path

    return is_image_path(path)


def planned_writes(job: Job, cfg: BlurConfig) -> list[Path]:
    """Every file ``job`` writes: its output and the sidecars ``--save-masks`` / ``--save-json`` add."""
    if isinstance(job.output, str):
        return []  # a re-stream URL
    output = Path(job.output)
    writes = [output]
    if job.kind in ("image", "video"):
        if cfg.save_masks:
            writes.append(_sidecar(output, "_mask.png" if job.kind == "image" else "_mask.mp4"))
        if cfg.save_json:
            writes.append(_sidecar(output, ".json" if job.kind == "image" else ".jsonl"))
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


# --------------------------------------------------------------------------- audit


def mask_regions(mask: np.ndarray | None) -> list[dict]:
    """Boxes of the connected components of a HW mask (>0.5 = blurred), in pixels: the audit view of
    what was blurred, whatever the method."""
    import cv2

    if mask is None:
        return []
    binary = (np.asarray(mask) > 0.5).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return [{"box": [int(x), int(y), int(x + w), int(y + h)], "area": int(a)} for x, y, w, h, a in stats[1:n]]


def audit_record(result, **extra) -> dict:
    """JSON-ready per image/frame record: the faces the method reported (with scores) and the blurred regions."""
    record = dict(extra)
    record["faces"] = [f.to_dict() for f in result.faces]
    record["regions"] = mask_regions(result.mask)
    return record


def _mask_u8(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, np.uint8)
    return np.where(np.asarray(mask) > 0.5, 255, 0).astype(np.uint8)


def _sidecar(output: Path, tail: str) -> Path:
    return output.with_name(output.stem + tail)


# --------------------------------------------------------------------------- images


def blur_image_file(blurrer, source: str | os.PathLike, output: str | os.PathLike, cfg: BlurConfig) -> None:
    """Anonymise one image file into ``output`` (same format; EXIF kept only with ``keep_metadata``)."""
    from .io import read_exif, read_image, write_image

    image = read_image(source)
    result = anonymised(blurrer, image, source=str(source))
    exif = read_exif(source) if cfg.keep_metadata else None
    output = Path(output)
    write_image(output, result.image, exif=exif)
    if cfg.save_masks:
        write_image(_sidecar(output, "_mask.png"), _mask_u8(result.mask, image.shape[:2]))
    if cfg.save_json:
        from .fsutil import write_text_atomic

        h, w = image.shape[:2]
        record = audit_record(result, input=str(source), output=str(output), width=w, height=h,
                              method=getattr(blurrer, "name", "?"))
        write_text_atomic(_sidecar(output, ".json"), json.dumps(record, indent=1) + "\n")


# --------------------------------------------------------------------------- video


def _ffmpeg_rate(info) -> str:
    # ffmpeg's header rounds NTSC rates ("29.97"); the exact fraction keeps long videos in sync.
    ntsc = {"23.98": "24000/1001", "29.97": "30000/1001", "59.94": "60000/1001", "119.88": "120000/1001"}
    return ntsc.get(info.fps_text, info.fps_text.replace("k", "000"))


def blur_video_file(blurrer, source: str | os.PathLike, output: str | os.PathLike, cfg: BlurConfig,
                    progress: bool = True, problems: list | None = None) -> tuple[int, list[str]]:
    """Anonymise a video file into ``output``: every frame, same frame rate, audio kept unless ``cfg.audio``
    is False. Returns (frames written, notes). Damaged stretches ffmpeg had to skip are appended to
    ``problems`` as (input, what) (the output then holds every frame that could be decoded, anonymised)."""
    from .media import VideoReader, VideoWriter, mux_audio, probe_video
    from .runtime.temporal import TemporalBlurrer

    output = Path(output)
    info = probe_video(source)
    notes = []
    if info.variable_rate:
        notes.append(f"{source}: variable frame rate input; output is constant {info.fps_text} fps with every "
                     "frame kept (timing of individual frames may shift slightly)")
    rate = _ffmpeg_rate(info)
    frame_blurrer = TemporalBlurrer(blurrer, cfg.hold_frames) if cfg.hold_frames else blurrer
    want_audio = cfg.audio and info.has_audio
    frames = 0
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(output, overwrite=True))
        video_tmp = tmp.with_name(tmp.name.replace(".part", "-v.part")) if want_audio else tmp
        stack.callback(lambda: video_tmp.unlink(missing_ok=True) if video_tmp != tmp else None)
        reader = VideoReader(source, info)
        stack.callback(reader.close)
        writer = VideoWriter(video_tmp, info.width, info.height, rate, codec=cfg.codec, crf=cfg.crf, preset=cfg.preset)
        mask_writer = None
        if cfg.save_masks:
            mask_tmp = stack.enter_context(atomic_path(_sidecar(output, "_mask.mp4"), overwrite=True))
            mask_writer = VideoWriter(mask_tmp, info.width, info.height, rate, codec="libx264", crf=0, gray=True)
        json_file = None
        if cfg.save_json:
            json_tmp = stack.enter_context(atomic_path(_sidecar(output, ".jsonl"), overwrite=True))
            json_file = stack.enter_context(open(json_tmp, "w", encoding="utf-8"))
        try:
            bar = _progress(progress and cfg.progress, total=info.frames_estimate, desc=Path(source).name, unit="frame")
            for frame in reader:
                try:
                    result = anonymised(frame_blurrer, frame)
                except Exception as exc:  # noqa: BLE001 - fail closed: no frame of unknown state goes out
                    raise BadInputError(source, f"frame {frames}: {_failure(exc)}; the video was not written "
                                                "(fail closed)") from None
                writer.write(result.image)
                if mask_writer is not None:
                    mask_writer.write(_mask_u8(result.mask, frame.shape[:2]))
                if json_file is not None:
                    json_file.write(json.dumps(audit_record(result, frame=frames)) + "\n")
                frames += 1
                bar.update(1)
            bar.close()
        except BaseException:
            writer.abort()
            if mask_writer is not None:
                mask_writer.abort()
            raise
        writer.close()
        if mask_writer is not None:
            mask_writer.close()
        if frames == 0:
            raise BadInputError(source, "the video has no decodable frames")
        if reader.errors and problems is not None:
            expected = f" of about {info.frames_estimate}" if info.frames_estimate else ""
            problems.append((str(source), f"damaged video: only {frames}{expected} frames could be decoded; "
                                          f"the output has those frames ({len(reader.errors)} decoder errors, first: "
                                          f"{reader.errors[0][:120]})"))
        if want_audio:
            how = mux_audio(video_tmp, source, tmp)
            if how == "re-encoded":
                notes.append(f"{source}: audio ({info.audio_codec}) could not be copied into {output.suffix}; "
                             "re-encoded")
    return frames, notes


# --------------------------------------------------------------------------- streams (fail closed)


def anonymised(blurrer, frame: np.ndarray, source: str | None = None):
    """``blurrer(frame)``, checked: a result that is not an image of the frame's size and type raises.

    The one gate every image, video frame and stream frame passes, so a broken model fails closed
    the same way everywhere (model outputs themselves are checked by ``check_model_output``).
    ``source``: the image's file, for blurrers that look boxes up by file (``file:boxes.json``)."""
    result = blurrer(frame, source=source) if getattr(blurrer, "needs_source", False) else blurrer(frame)
    out = getattr(result, "image", None)
    if not (isinstance(out, np.ndarray) and out.shape == frame.shape and out.dtype == np.uint8):
        from .errors import UnusableModelOutput

        raise UnusableModelOutput(f"the blurrer returned {getattr(out, 'dtype', type(out))} "
                                  f"{getattr(out, 'shape', '')} for a {frame.shape} uint8 frame")
    return result


def _failure(exc: BaseException) -> str:
    if isinstance(exc, UnetblurError):
        return str(exc)
    return f"the model failed ({type(exc).__name__}: {first_line(exc, 160)})"


def fail_closed(frames: Iterable[np.ndarray], blurrer, on_failure: Callable[[BaseException], None] | None = None,
                ) -> Iterator[tuple[np.ndarray, object | None]]:
    """Anonymise ``frames`` one by one, never letting an unanonymised frame out.

    Yields ``(frame_out, result)``; when inference raises or returns something unusable, the frame is
    replaced by a black frame of the same size and ``result`` is None (``on_failure`` is told why).
    """
    for frame in frames:
        try:
            result = anonymised(blurrer, frame)
        except Exception as exc:  # noqa: BLE001 - any failure means the frame is not known to be anonymised
            if on_failure is not None:
                on_failure(exc)
            yield np.zeros_like(frame), None
            continue
        yield result.image, result


def warm_up(blurrer, height: int, width: int) -> None:
    """Run the blurrer once on a blank frame, so its first real frame is not the slow one (and a
    broken model fails here, before any output exists)."""
    try:
        # Mid-grey, not black: a model that scales its input out of range looks fine on zeros.
        anonymised(blurrer, np.full((height, width, 3), 128, np.uint8))
    except UnetblurError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that cannot run must stop the stream before it starts
        raise UnetblurError(f"the model failed on a blank {width}×{height} frame ({type(exc).__name__}: "
                            f"{first_line(exc, 160)}); nothing was written") from None


_RESTREAM_FORMATS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "flv", "udp": "mpegts", "tcp": "mpegts",
                     "srt": "mpegts", "http": "mpegts", "https": "mpegts"}


def blur_stream(blurrer, source: str, output: Path | str, cfg: BlurConfig, summary: Summary) -> int:
    """Anonymise a webcam or stream into a file or a re-stream URL until it ends, ``max_frames``, or Ctrl-C.

    Fail closed: the source is opened and the model warmed on a blank frame of the source's size
    *before* the output exists; every frame then goes through :func:`fail_closed`.
    """
    from .media import CaptureSource, VideoWriter
    from .runtime.temporal import TemporalBlurrer

    capture = CaptureSource(source)
    try:
        warm_up(blurrer, capture.height, capture.width)
        frame_blurrer = TemporalBlurrer(blurrer, cfg.hold_frames) if cfg.hold_frames else blurrer
        failures: list[str] = []
        frames = 0
        restream = isinstance(output, str) and "://" in output
        with contextlib.ExitStack() as stack:
            if restream:
                fmt = _RESTREAM_FORMATS.get(output.split("://", 1)[0].lower(), "mpegts")
                target = output
            else:
                target = stack.enter_context(atomic_path(output, overwrite=cfg.overwrite))
                fmt = None
            writer = VideoWriter(target, capture.width, capture.height, f"{capture.fps:g}", codec=cfg.codec,
                                 crf=cfg.crf, preset=cfg.preset or ("ultrafast" if restream else None), fmt=fmt)
            bar = _progress(cfg.progress, total=cfg.max_frames, desc=source, unit="frame")
            try:
                for out, _ in fail_closed(capture, frame_blurrer, lambda e: failures.append(str(e))):
                    if out.shape[:2] != (capture.height, capture.width):
                        # The source changed resolution mid-stream: fit the (anonymised) frame to the output.
                        import cv2

                        out = cv2.resize(out, (capture.width, capture.height), interpolation=cv2.INTER_AREA)
                    writer.write(out)
                    frames += 1
                    bar.update(1)
                    if cfg.max_frames and frames >= cfg.max_frames:
                        break
            except KeyboardInterrupt:
                summary.notes.append(f"{source}: stopped by Ctrl-C after {frames} frames")
            bar.close()
            writer.close()
        summary.black_frames += len(failures)
        if failures:
            summary.notes.append(f"{source}: {len(failures)} frames blacked out; first failure: {failures[0][:160]}")
        return frames
    finally:
        capture.close()


# --------------------------------------------------------------------------- orchestration


def _progress(enabled: bool, **kwargs):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a core dependency, but progress must never break a run
        enabled = False
    if not enabled:
        class _Null:
            def update(self, n=1): ...
            def close(self): ...
        return _Null()
    return tqdm(file=sys.stderr, dynamic_ncols=True, disable=None, **kwargs)


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def anonymise(cfg: BlurConfig, blurrer=None) -> Summary:
    """Anonymise every input of ``cfg``; return a :class:`Summary` (``exit_code`` 1 if anything was skipped).

    ``blurrer``: use this :class:`Blurrer` instead of opening ``cfg.model`` (library use, tests).
    A run with exactly one input file that cannot be processed raises :class:`UnetblurError`
    (one line, exit 2) instead of returning a summary.
    """
    if not cfg.inputs:
        raise UnetblurError("no input given; pass image files, folders, videos, webcam[:N] or a stream URL")
    for name, value in (("workers", cfg.workers), ("threads", cfg.threads), ("max_frames", cfg.max_frames),
                        ("hold_frames", cfg.hold_frames)):
        if value is not None and value < (0 if name == "hold_frames" else 1):
            raise UnetblurError(f"{name} must be at least {0 if name == 'hold_frames' else 1}, got {value}")
    if cfg.output and "://" in cfg.output and not all(_is_live(t) for t in cfg.inputs):
        raise UnetblurError(f"-o {cfg.output}: re-streaming to a URL works for webcam/stream inputs only")
    shard = parse_shard(cfg.shard)
    workers = cfg.workers or _default_workers()
    threads = cfg.threads
    batch = len(cfg.inputs) > 1 or any(Path(t).is_dir() for t in cfg.inputs if not _is_live(t))
    if threads is None and batch and workers > 1:
        threads = max(1, _default_workers() // workers)  # one pool of cores, not workers × threads
    if blurrer is None:
        blurrer = open_blurrer_for(cfg, threads)
    summary = Summary()
    start = time.perf_counter()
    jobs_seen = 0

    def note_skip(path, reason):
        summary.skipped.append((str(path), reason))

    image_jobs: dict = {}
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unetblur-image")
    bar = _progress(cfg.progress and batch, desc="images", unit="img")

    def drain(block_until: int) -> None:
        # Keep at most ~2×workers images in flight: a folder of 10,000 never queues 10,000 futures.
        while len(image_jobs) > block_until:
            done, _ = cf.wait(list(image_jobs), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                job = image_jobs.pop(fut)
                try:
                    fut.result()
                    summary.written.append((job.source, str(job.output)))
                except BadInputError as exc:
                    note_skip(job.source, exc.problem)
                except UnetblurError as exc:
                    note_skip(job.source, str(exc))
                except MemoryError:
                    note_skip(job.source, "not enough memory for this image")
                except Exception as exc:  # noqa: BLE001 - a batch skips a file it cannot process
                    note_skip(job.source, f"failed ({type(exc).__name__}: {first_line(exc, 160)})")
                bar.update(1)

    try:
        skipped_at_plan: list = []
        guard = OutputGuard(cfg, output_layout(cfg)[3])
        for index, job in enumerate(plan_jobs(cfg, skipped_at_plan)):
            while skipped_at_plan:
                note_skip(*skipped_at_plan.pop(0))
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
                note_skip(exc.path, exc.problem)
                continue
            if job.kind == "image":
                fut = pool.submit(blur_image_file, blurrer, job.source, job.output, cfg)
                image_jobs[fut] = job
                drain(2 * workers)
                continue
            drain(0)  # finish pending images before a video takes every core
            try:
                if job.kind == "video":
                    frames, notes = blur_video_file(blurrer, job.source, job.output, cfg,
                                                    problems=summary.problems)
                    summary.notes += notes
                else:
                    frames = blur_stream(blurrer, job.source, job.output, cfg, summary)
                summary.frames += frames
                summary.written.append((job.source, str(job.output)))
            except BadInputError as exc:
                note_skip(exc.path, exc.problem)
            except UnetblurError as exc:
                if job.kind in ("webcam", "stream"):
                    raise  # an unreadable stream is a usage error: one line, exit 2
                note_skip(job.source, str(exc))
        while skipped_at_plan:
            note_skip(*skipped_at_plan.pop(0))
        drain(0)
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - start
    explicit_files = len(cfg.inputs) == 1 and not Path(cfg.inputs[0]).is_dir()
    if explicit_files and summary.skipped and not summary.written:
        path, reason = summary.skipped[0]
        raise UnetblurError(f"{quote_path(path)}: {reason}")
    if jobs_seen == 0 and not summary.skipped:
        hint = "" if cfg.recursive else " (use --recursive for subfolders)"
        summary.notes.append("no images or videos found" + hint)
    return summary


def _is_live(text: str) -> bool:
    from .media import is_stream_url, parse_webcam

    return parse_webcam(text) is not None or is_stream_url(text)
