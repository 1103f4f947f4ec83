"""What ``unetblur blur`` runs: its config (:class:`BlurConfig`) and the :class:`Blurrer` it opens."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..blur import DEFAULT_BLUR, BlurFields, BlurSettings
from ..errors import UnetblurError
from ..runtime.temporal import DEFAULT_HOLD_FRAMES


#: Where the experiments stage ships the student model (``--model student``).
PACKAGED_MODEL = Path(__file__).parents[1] / "assets" / "student_int8.onnx"

#: ``--model`` name of the packaged student; it runs at the operating point stored in it.
STUDENT_MODEL = "student"

#: What ``unetblur blur`` runs without ``--model``: the packaged method that wins the full-photo privacy
#: table (experiments/full_photo/table.md: coverage at bg_changed ≤ 2 %). CenterFace until a student beats it.
DEFAULT_MODEL = "centerface"

#: ``mask_scale`` of a detector's faces when none is given (others keep the dataset blur's 1.2, drawn around
#: annotated faces, which the students learned). CenterFace's boxes are shorter than annotated faces (FDDB's
#: ellipses: 0.79x their height, centred 7 % lower, median over 183 val faces >= 64 px), so at 1.2 a fifth of
#: the faces >= 64 px it found kept over a fifth of their detail. Chosen on val photos, the largest region
#: that keeps bg_changed <= 2 % at both scales of the table (experiments/full_photo/detector_region_val.md):
#: centerface 0.817 -> 0.942 coverage >= 32 px (bg 1.26 -> 1.64 %), centerface@0.3 0.749 -> 0.896 (1.49 -> 1.97 %).
#: The Haar cascade by the same rule (experiments/full_photo/detector_region_haar_val.md): 0.573 -> 0.675 (0.77 ->
#: 1.56 %); at 1.5 it passes the cap (2.26 %).
DETECTOR_MASK_SCALE = {"centerface": 1.4, "haar": 1.4}


@dataclass(frozen=True)
class BlurConfig(BlurFields):
    """Settings of ``unetblur blur`` (YAML keys = field names; flags override). The blur itself
    (style, shape, mask_scale, kernel, strength) is :class:`BlurFields`, spelled as in ``data build``."""

    mask_scale: float | None = None        # None: the method's own (DETECTOR_MASK_SCALE, else the dataset blur's)

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
    grow: float | None = None              # scale each found face by this factor before blurring (default 1)
    min_peak: float | None = None          # keep a found region only if its mask peaks at ≥ this (default 0: off)
    small_area: int | None = None          # regions below this many working pixels need only small_peak (default 0: off)
    small_peak: float | None = None        # the peak such a small region needs (default 0)
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

    def blur_settings(self) -> BlurSettings:
        """The blur of each found face, ``mask_scale`` resolved by :meth:`method_mask_scale`."""
        return BlurFields.blur_settings(replace(self, mask_scale=self.method_mask_scale()))

    def method_mask_scale(self) -> float:
        """``mask_scale`` as given, else the model's own: :data:`DETECTOR_MASK_SCALE` for a detector (any
        detection scale), the dataset blur's for everything else."""
        if self.mask_scale is not None:
            return float(self.mask_scale)
        detector = str(self.model or DEFAULT_MODEL).strip().partition("@")[0]
        return DETECTOR_MASK_SCALE.get(detector, DEFAULT_BLUR.mask_scale)


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
    from ..runtime.factory import is_model_spec, open_blurrer

    spec = resolve_model(cfg.model)
    settings = cfg.blur_settings()
    if is_model_spec(spec):
        options = {}
        if cfg.mode == "composite":  # None: the model's operating point decides (runtime.operating_point)
            options = {"working_size": cfg.working_size, "threshold": cfg.threshold, "dilate": cfg.dilate,
                       "grow": cfg.grow, "min_peak": cfg.min_peak, "small_area": cfg.small_area,
                       "small_peak": cfg.small_peak, "scales": tuple(cfg.scales) if cfg.scales is not None else None}
        return open_blurrer(spec, settings, mode=cfg.mode, threads=threads, **options)
    return open_blurrer(spec, settings, threads=threads)
