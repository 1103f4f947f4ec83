"""The ``Blurrer`` interface and the detector-plus-blur baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..blur import DEFAULT_BLUR, BlurSettings, blur_faces
from ..errors import UnetblurError, UnusableModelOutput
from ..faces import Face


@dataclass
class BlurResult:
    """What a Blurrer returns for one image.

    image: HWC uint8 RGB, same size as the input.
    mask:  HW float32 in [0, 1], the region the method treats as face (None if it has no notion of one).
    faces: the regions it blurred as boxes (detections, or connected components of the mask), for audit.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    faces: list[Face] = field(default_factory=list)


@runtime_checkable
class Blurrer(Protocol):
    """Anything that anonymises an image: detector baselines, torch models, ONNX FP32/FP16/INT8 models.

    ``faces`` is the ground truth of the image where the caller has it; only the ``oracle``
    baseline uses it (it must then reproduce the target exactly). Every other Blurrer ignores it.
    """

    name: str

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult: ...


class DetectorBlurrer:
    """Detector + ``blur_faces``: the baseline, built from the same blur definition as the targets."""

    def __init__(self, detector, settings: BlurSettings | None = None, name: str | None = None):
        self.detector = detector
        self.settings = settings or DEFAULT_BLUR
        self.name = name or getattr(detector, "name", type(detector).__name__)

    @property
    def needs_source(self) -> bool:
        """True when the detector looks boxes up by the image's file (``file:boxes.json``): callers
        then pass ``source=`` the path."""
        return bool(getattr(self.detector, "needs_path", False))

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None, *,
                 source: str | None = None) -> BlurResult:
        found = list(self.detector.detect(image, path=source) if self.needs_source else self.detector.detect(image))
        out, mask = blur_faces(image, found, self.settings)
        return BlurResult(out, mask.astype(np.float32) / 255.0, found)


class OracleBlurrer:
    """Blurs the ground-truth faces it is given: reproduces the target exactly (a sanity check)."""

    name = "oracle"

    def __init__(self, settings: BlurSettings | None = None):
        self.settings = settings or DEFAULT_BLUR

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        out, mask = blur_faces(image, list(faces or []), self.settings)
        return BlurResult(out, mask.astype(np.float32) / 255.0, list(faces or []))


@runtime_checkable
class ImageModel(Protocol):
    """A U-Net behind any backend (torch ``.pt``, ONNX FP32/FP16/INT8), seen as arrays.

    ``predict`` takes an HWC uint8 RGB image of any size (the backend pads to ``stride`` and
    crops back) and returns ``(rgb, mask)``: the network's HWC uint8 RGB output and its HW
    float32 mask channel in [0, 1], or None when the network has no mask channel.
    ``mask_channel`` says which, before any image is run. ``rgb=False`` asks for the mask only
    (``rgb`` is then None): compositing a mask-channel model never looks at the RGB output.
    """

    name: str
    stride: int
    mask_channel: bool

    def predict(self, image: np.ndarray, rgb: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]: ...


#: Every unetblur U-Net ends in a sigmoid, so its outputs lie in [0, 1]; FP16 and INT8 rounding stays
#: well inside this margin. Anything further out means the numbers are not an image or a probability.
OUTPUT_TOLERANCE = 0.02


def check_image(image) -> None:
    """Refuse, in one line, anything but the HWC uint8 RGB frame every image model and blurrer takes."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise UnetblurError(f"expected an H×W×3 uint8 RGB image, got {getattr(image, 'dtype', type(image))} "
                            f"array of shape {getattr(image, 'shape', None)}")


def check_model_output(output: np.ndarray, name: str, mask_channel: bool) -> None:
    """Refuse a raw network output (C×H×W or N×C×H×W float, before clipping) that cannot be trusted.

    Clipping maps NaN and wild values to something that *looks* like an image (NaN → no face in the
    mask, so nothing is blurred): a model that fails must fail closed instead. Raises
    :class:`UnusableModelOutput` when a value is non-finite, outside [0, 1] beyond
    :data:`OUTPUT_TOLERANCE`, or when the model declares a mask channel it does not produce.
    """
    out = np.asarray(output)
    channels = out.shape[-3] if out.ndim >= 3 else 0
    if channels < (4 if mask_channel else 3):
        raise UnusableModelOutput(f"model {name} returned {channels} channel(s); expected RGB"
                                  f"{' + a mask channel' if mask_channel else ''}: not a unetblur U-Net output")
    if out.size == 0:
        raise UnusableModelOutput(f"model {name} returned an empty output")
    low, high = float(np.min(out)), float(np.max(out))  # NaN propagates through min/max
    if not (np.isfinite(low) and np.isfinite(high)):
        raise UnusableModelOutput(f"model {name} returned non-finite values (NaN or inf); nothing it would "
                                  "blur can be trusted: check or re-export the model")
    if low < -OUTPUT_TOLERANCE or high > 1 + OUTPUT_TOLERANCE:
        raise UnusableModelOutput(f"model {name} returned values in [{low:.3g}, {high:.3g}], outside [0, 1]: "
                                  "not a unetblur U-Net output; check or re-export the model")


def check_mask(mask: np.ndarray | None, shape: tuple[int, int], name: str) -> None:
    """Refuse a face mask (HW float in [0, 1]) that is non-finite, out of range or of another size
    than ``shape``: the compositor would read such a mask as "no face" and blur nothing."""
    if mask is None:
        return
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise UnusableModelOutput(f"model {name} returned a {mask.shape} mask for a {tuple(shape)} image")
    if mask.size and not (np.isfinite(mask).all() and -OUTPUT_TOLERANCE <= float(mask.min())
                          and float(mask.max()) <= 1 + OUTPUT_TOLERANCE):
        raise UnusableModelOutput(f"model {name} returned a mask with NaN, inf or values outside [0, 1]; "
                                  "check or re-export the model")


#: Pixels whose output differs from the input by more than this (0-255 scale, max over channels)
#: count as "changed by the network" when a model has no mask channel.
DIFF_MASK_THRESHOLD = 8


def difference_mask(image: np.ndarray, output: np.ndarray, threshold: int = DIFF_MASK_THRESHOLD) -> np.ndarray:
    """HW float32 {0, 1} mask of pixels the network changed by more than ``threshold``/255."""
    diff = np.abs(output.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    return (diff > threshold).astype(np.float32)


class ModelBlurrer:
    """A U-Net used as the thesis uses it: its RGB output *is* the anonymised image ("raw" mode).

    Full-resolution compositing (sharp background, blur from ``blur_faces`` rules) wraps an
    :class:`ImageModel` differently; see ``unetblur.runtime.composite``.
    """

    def __init__(self, model: ImageModel, name: str | None = None):
        self.model = model
        self.name = name or model.name

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        rgb, mask = self.model.predict(image)
        check_mask(mask, image.shape[:2], self.name)
        if not (isinstance(rgb, np.ndarray) and rgb.shape == image.shape and rgb.dtype == np.uint8):
            raise UnusableModelOutput(f"model {self.name} returned {getattr(rgb, 'dtype', type(rgb))} "
                                      f"{getattr(rgb, 'shape', '')} for a {image.shape} uint8 image")
        return BlurResult(rgb, mask if mask is not None else difference_mask(image, rgb))
