"""The loops of ``unetblur blur``, one per kind of input: an image file, a video file (audio kept), a
webcam or stream (fail closed). Every frame passes one gate, :func:`anonymised`; ``--save-json`` writes
:func:`audit_record` per image or frame."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import BadInputError, UnetblurError, first_line
from ..fsutil import atomic_path
from .config import BlurConfig
from .plan import sidecar


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


def blur_image_file(blurrer, source: str | os.PathLike, output: str | os.PathLike, cfg: BlurConfig) -> None:
    """Anonymise one image file into ``output`` (same format; EXIF kept only with ``keep_metadata``)."""
    from ..io import read_exif, read_image, write_image

    image = read_image(source)
    result = anonymised(blurrer, image, source=str(source))
    exif = read_exif(source) if cfg.keep_metadata else None
    output = Path(output)
    write_image(output, result.image, exif=exif)
    if cfg.save_masks:
        write_image(sidecar(output, "image", "mask"), _mask_u8(result.mask, image.shape[:2]))
    if cfg.save_json:
        from ..fsutil import write_text_atomic

        h, w = image.shape[:2]
        record = audit_record(result, input=str(source), output=str(output), width=w, height=h,
                              method=getattr(blurrer, "name", "?"))
        write_text_atomic(sidecar(output, "image", "json"), json.dumps(record, indent=1) + "\n")


def _ffmpeg_rate(info) -> str:
    # ffmpeg's header rounds NTSC rates ("29.97"); the exact fraction keeps long videos in sync.
    ntsc = {"23.98": "24000/1001", "29.97": "30000/1001", "59.94": "60000/1001", "119.88": "120000/1001"}
    return ntsc.get(info.fps_text, info.fps_text.replace("k", "000"))


def blur_video_file(blurrer, source: str | os.PathLike, output: str | os.PathLike, cfg: BlurConfig,
                    progress: bool = True, problems: list | None = None) -> tuple[int, list[str]]:
    """Anonymise a video file into ``output``: every frame, same frame rate, audio kept unless ``cfg.audio``
    is False. Returns (frames written, notes). Damaged stretches ffmpeg had to skip are appended to
    ``problems`` as (input, what) (the output then holds every frame that could be decoded, anonymised)."""
    from ..video import VideoReader, VideoWriter, mux_audio, probe_video
    from ..runtime.temporal import TemporalBlurrer

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
            mask_tmp = stack.enter_context(atomic_path(sidecar(output, "video", "mask"), overwrite=True))
            mask_writer = VideoWriter(mask_tmp, info.width, info.height, rate, codec="libx264", crf=0, gray=True)
        json_file = None
        if cfg.save_json:
            json_tmp = stack.enter_context(atomic_path(sidecar(output, "video", "json"), overwrite=True))
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


def anonymised(blurrer, frame: np.ndarray, source: str | None = None):
    """``blurrer(frame)``, checked: a result that is not an image of the frame's size and type raises.

    The one gate every image, video frame and stream frame passes, so a broken model fails closed
    the same way everywhere (model outputs themselves are checked by ``check_model_output``).
    ``source``: the image's file, for blurrers that look boxes up by file (``file:boxes.json``)."""
    result = blurrer(frame, source=source) if getattr(blurrer, "needs_source", False) else blurrer(frame)
    out = getattr(result, "image", None)
    if not (isinstance(out, np.ndarray) and out.shape == frame.shape and out.dtype == np.uint8):
        from ..errors import UnusableModelOutput

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
    from ..video import CaptureSource, VideoWriter
    from ..runtime.temporal import TemporalBlurrer

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
