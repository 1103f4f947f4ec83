"""The ``Blurrer`` interface and the detector-plus-blur baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..blur import BlurSettings, blur_faces
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
        self.settings = settings or BlurSettings()
        self.name = name or getattr(detector, "name", type(detector).__name__)

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        found = list(self.detector.detect(image))
        out, mask = blur_faces(image, found, self.settings)
        return BlurResult(out, mask.astype(np.float32) / 255.0, found)


class OracleBlurrer:
    """Blurs the ground-truth faces it is given: reproduces the target exactly (a sanity check)."""

    name = "oracle"

    def __init__(self, settings: BlurSettings | None = None):
        self.settings = settings or BlurSettings()

    def __call__(self, image: np.ndarray, faces: Sequence[Face] | None = None) -> BlurResult:
        out, mask = blur_faces(image, list(faces or []), self.settings)
        return BlurResult(out, mask.astype(np.float32) / 255.0, list(faces or []))


@runtime_checkable
class ImageModel(Protocol):
    """A U-Net behind any backend (torch ``.pt``, ONNX FP32/FP16/INT8), seen as arrays.

    ``predict`` takes an HWC uint8 RGB image of any size (the backend pads to ``stride`` and
    crops back) and returns ``(rgb, mask)``: the network's HWC uint8 RGB output and its HW
    float32 mask channel in [0, 1], or None when the network has no mask channel.
    """

    name: str
    stride: int

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


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
        return BlurResult(rgb, mask if mask is not None else difference_mask(image, rgb))
