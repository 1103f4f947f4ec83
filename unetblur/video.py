"""Video at the edge, beside :mod:`unetblur.io` for images: file and stream names, ffmpeg decode/encode, capture.

Video goes through the ffmpeg binary that ``imageio-ffmpeg`` ships (no system ffmpeg needed), over
subprocess pipes: decode to raw RGB frames, blur in Python, encode raw RGB frames. Audio is muxed
back from the original file afterwards (copied when the container allows, else re-encoded), so a
video without audio and one whose audio codec the container refuses both work.

Webcams and network streams are read with OpenCV (``cv2.VideoCapture``), which gives up on an
unreachable URL quickly and reports the frame size before the first frame.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import Iterator

import numpy as np

from .errors import BadInputError, UnetblurError
from .io import check_pixels

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_stream_url(text: str) -> bool:
    return str(text).lower().startswith(STREAM_PREFIXES)


def parse_webcam(text: str) -> int | None:
    """``webcam`` → 0, ``webcam:2`` → 2, anything else → None."""
    m = re.fullmatch(r"webcam(?::(\d+))?", str(text).strip())
    return int(m.group(1) or 0) if m else None


# --------------------------------------------------------------------------- ffmpeg


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped by imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UnetblurError("video needs the 'imageio-ffmpeg' package (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_file(path: str | os.PathLike) -> str:
    """A local path as ffmpeg must be given it: ``file:`` + the absolute path. ffmpeg reads anything
    before a colon as a protocol (``concat:``, ``cam1-10:15.mp4``) and a leading ``-`` as an option,
    so a plain file name could make it read another file, or a URL."""
    return "file:" + os.path.abspath(os.fspath(path))


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg's header says about a video (sizes are of the decoded, upright frames)."""

    width: int
    height: int
    fps: float
    fps_text: str          # the rate as ffmpeg states it ("25", "29.97", "30000/1001")
    duration: float | None  # seconds
    has_audio: bool
    audio_codec: str | None
    variable_rate: bool    # the stream's average rate differs from its base rate (likely VFR)
    rotation: int          # degrees ffmpeg rotates by on decode

    @property
    def frames_estimate(self) -> int | None:
        return int(round(self.duration * self.fps)) if self.duration and self.fps else None


_STREAM_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_STREAM_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+)")
_SIZE = re.compile(r"(?:^|[ ,])(\d{2,6})x(\d{2,6})(?:[ ,\[]|$)")
_FPS = re.compile(r"([\d.]+(?:/[\d.]+)?)(k?) fps")
_TBR = re.compile(r"([\d.]+)(k?) tbr")
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")


def _rate(text: str, kilo: str) -> float:
    if "/" in text:
        a, b = text.split("/")
        value = float(a) / float(b)
    else:
        value = float(text)
    return value * (1000 if kilo else 1)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's size, frame rate, duration and audio presence from ffmpeg's header dump."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(path, "file not found")
    if path.stat().st_size == 0:
        raise BadInputError(path, "file is empty (0 bytes)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", ffmpeg_file(path)], capture_output=True, text=True,
                          errors="replace", stdin=subprocess.DEVNULL)
    text = proc.stderr
    video = _STREAM_VIDEO.search(text)
    if not video:
        last = [ln.strip() for ln in text.splitlines() if ln.strip() and "output file" not in ln]
        why = last[-1] if last else "no video stream"
        raise BadInputError(path, f"not a readable video ({why[:160]})")
    desc = video.group(1)
    size = _SIZE.search(desc)
    fps = _FPS.search(desc)
    tbr = _TBR.search(desc)
    if not size or not (fps or tbr):
        raise BadInputError(path, f"cannot read the frame size / rate of the video stream ({desc[:120]})")
    w, h = int(size.group(1)), int(size.group(2))
    rate_text, kilo = (fps.group(1), fps.group(2)) if fps else (tbr.group(1), tbr.group(2))
    rate = _rate(rate_text, kilo)
    base = _rate(tbr.group(1), tbr.group(2)) if tbr else rate
    rotation = 0
    rot = _ROTATION.search(text)
    if rot:
        rotation = int(round(float(rot.group(1)))) % 360
        if rotation in (90, 270):  # ffmpeg autorotates on decode: frames come out upright
            w, h = h, w
    check_pixels(path, w, h, "video frame")  # a frame is decoded into w×h×3 bytes, dozens at a time
    dur = _DURATION.search(text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None
    audio = _STREAM_AUDIO.search(text)
    return VideoInfo(w, h, rate, rate_text + ("k" if kilo else ""), duration, audio is not None,
                     audio.group(1) if audio else None, abs(base - rate) > 0.01 * max(rate, 1e-6), rotation)


class VideoReader:
    """Decoded RGB frames of a video file from an ffmpeg pipe, one HWC uint8 array per source frame.

    ``-fps_mode passthrough`` keeps every decoded frame exactly once (no duplicates or drops for
    variable-rate input), so the output has the input's frame count. A reader thread keeps
    ``prefetch`` frames decoded ahead, so decoding overlaps inference.
    """

    def __init__(self, path: str | os.PathLike, info: VideoInfo | None = None, prefetch: int = 4):
        self.path = Path(path)
        self.info = info or probe_video(self.path)
        self.frame_bytes = self.info.width * self.info.height * 3
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", ffmpeg_file(self.path),
               "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      bufsize=self.frame_bytes)
        self._queue: Queue = Queue(maxsize=max(1, prefetch))
        #: ffmpeg's error lines (damaged packets it skipped), drained continuously so a file with many
        #: errors never blocks the decoder on a full stderr pipe.
        self.errors: list[str] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name="unetblur-decode-log", daemon=True)
        self._stderr_thread.start()
        self._thread = threading.Thread(target=self._read, name="unetblur-decode", daemon=True)
        self._stop = False
        self._thread.start()

    def _drain_stderr(self) -> None:
        for raw in iter(self._proc.stderr.readline, b""):
            line = raw.decode(errors="replace").strip()
            if line and len(self.errors) < 1000:
                self.errors.append(line)

    def _read(self) -> None:
        try:
            shape = (self.info.height, self.info.width, 3)
            while not self._stop:
                buf = _read_exact(self._proc.stdout, self.frame_bytes)
                if buf is None:
                    break
                self._queue.put(np.frombuffer(buf, np.uint8).reshape(shape))
        finally:
            self._queue.put(None)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            frame = self._queue.get()
            if frame is None:
                break
            yield frame
        self._proc.wait()
        self._stderr_thread.join(timeout=5)
        if self._proc.returncode not in (0, None) and not self._stop:
            why = self.errors[-1][:160] if self.errors else "ffmpeg error"
            raise BadInputError(self.path, f"video decoding failed ({why})")

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(Exception):
            while not self._queue.empty():
                self._queue.get_nowait()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        with contextlib.suppress(Exception):
            self._proc.stdout.close()
            self._proc.stderr.close()


def _read_exact(stream, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            return None  # end of stream (a partial last frame is dropped, as ffmpeg never emits one)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks) if len(chunks) > 1 else chunks[0]


#: Default encoder per output container.
DEFAULT_CODECS = {".webm": "libvpx-vp9"}
DEFAULT_CODEC = "libx264"


def encoder_args(codec: str | None, crf: int | None, preset: str | None, suffix: str) -> list[str]:
    """ffmpeg output options for the video stream: codec, quality (CRF) and speed preset."""
    codec = codec or DEFAULT_CODECS.get(suffix.lower(), DEFAULT_CODEC)
    args = ["-c:v", codec]
    if codec in ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"):
        args += ["-crf", str(18 if crf is None else crf)]
        if codec == "libvpx-vp9":
            args += ["-b:v", "0"]
    elif crf is not None:
        args += ["-q:v", str(crf)]
    if preset and codec in ("libx264", "libx265"):
        args += ["-preset", preset]
    if codec not in ("rawvideo", "png", "ffv1"):
        args += ["-pix_fmt", "yuv420p"]
    return args


class VideoWriter:
    """Encode HWC uint8 RGB frames into ``path`` through an ffmpeg pipe (video only).

    Frames go through a writer thread, so encoding overlaps inference. Odd frame sides are padded
    by one pixel for the yuv420p encoders (which need even sides). ``fmt`` forces an output format
    (``rtsp``, ``mpegts`` for re-streaming).
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float | str, *, codec: str | None = None,
                 crf: int | None = None, preset: str | None = None, fmt: str | None = None, queue_size: int = 4,
                 gray: bool = False):
        self.path = str(path)
        self.width, self.height = width, height
        self.frames = 0
        suffix = Path(self.path).suffix if "://" not in self.path else ".mp4"
        self.gray = gray
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "gray" if gray else "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
               "-an"]
        cmd += encoder_args(codec, crf, preset, suffix)
        if width % 2 or height % 2:
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        if fmt:
            cmd += ["-f", fmt]
        cmd.append(self.path if "://" in self.path else ffmpeg_file(self.path))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._queue: Queue = Queue(maxsize=max(1, queue_size))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="unetblur-encode", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                break
            if self._error is not None:
                continue  # drain the queue so the producer never blocks
            try:
                self._proc.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
            except (BrokenPipeError, OSError) as exc:
                self._error = exc

    def write(self, frame: np.ndarray) -> None:
        expected = (self.height, self.width) if self.gray else (self.height, self.width, 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(f"frame of shape {frame.shape} {frame.dtype}, expected {expected} uint8")
        if self._error is not None:
            raise UnetblurError(f"{self.path}: the video encoder stopped ({self._stderr_tail()})")
        self._queue.put(frame)
        self.frames += 1

    def _stderr_tail(self) -> str:
        with contextlib.suppress(Exception):
            if self._proc.poll() is not None and self._proc.stderr:
                lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
                return lines[-1][:200] if lines else f"exit {self._proc.returncode}"
        return "ffmpeg error"

    def close(self) -> None:
        """Flush the queue and wait for ffmpeg to finish the file; raises if encoding failed."""
        self._queue.put(None)
        self._thread.join()
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        code = self._proc.wait()
        if code != 0 or self._error is not None:
            lines = err.strip().splitlines()
            raise UnetblurError(f"{self.path}: video encoding failed ({lines[-1][:200] if lines else f'exit {code}'}); "
                                "try another --codec or output extension")

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(Exception):
            self._queue.put_nowait(None)


def mux_audio(video_only: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write ``out`` = the video stream of ``video_only`` + the audio streams of ``source``.

    Audio is copied bit for bit when the container accepts it, else re-encoded (AAC in MP4/MOV,
    Opus in WebM, the container's default otherwise). Returns how audio was handled:
    ``copied``, ``re-encoded`` or ``none`` (the source has no audio).
    """
    base = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-nostdin", "-i", ffmpeg_file(video_only),
            "-i", ffmpeg_file(source), "-map", "0:v:0", "-map", "1:a?", "-c:v", "copy"]
    proc = subprocess.run(base + ["-c:a", "copy", ffmpeg_file(out)], capture_output=True, text=True, errors="replace")
    if proc.returncode == 0:
        return "copied"
    suffix = Path(out).suffix.lower()
    audio_codec = {".webm": "libopus", ".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac"}.get(suffix)
    args = ["-c:a", audio_codec] if audio_codec else []
    proc = subprocess.run(base + args + [ffmpeg_file(out)], capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        why = lines[-1][:200] if lines else "ffmpeg error"
        raise UnetblurError(f"{out}: cannot add the audio of {source} ({why}); "
                            "pass --no-audio to drop it")
    return "re-encoded"


def count_frames(path: str | os.PathLike) -> int:
    """Exact number of video frames (decodes the file; for tests and checks)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


# --------------------------------------------------------------------------- webcams and streams


class CaptureSource:
    """Frames from a webcam index or a stream URL through OpenCV, as HWC uint8 RGB arrays.

    Opening fails with one clear :class:`UnetblurError` line when the device or URL cannot be read.
    """

    def __init__(self, source: str, open_timeout_s: float = 10.0):
        import cv2

        self.source = source
        cam = parse_webcam(source)
        target = cam if cam is not None else source
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(open_timeout_s * 1000)]
        # OpenCV's FFmpeg backend prints its own "[tcp @ 0x…] Connection … failed" lines; our one
        # error line says the same for users (set OPENCV_FFMPEG_LOGLEVEL to see FFmpeg's).
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        try:
            self.cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        except cv2.error:
            self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            what = f"webcam {cam}" if cam is not None else source
            raise UnetblurError(f"{what}: cannot open the {'camera' if cam is not None else 'stream'}; "
                                f"check the {'device index' if cam is not None else 'URL, network and credentials'}")
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.cap.release()
            raise UnetblurError(f"{source}: opened but no frame could be read; check the source")
        self._first = frame
        self.height, self.width = frame.shape[:2]
        try:
            check_pixels(source, self.width, self.height, "stream frame")
        except BadInputError as exc:
            self.cap.release()
            raise UnetblurError(str(exc)) from None
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 25.0

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        frame = self._first
        self._first = None
        while frame is not None:
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            ok, frame = self.cap.read()
            if not ok:
                break

    def close(self) -> None:
        self.cap.release()
