"""Torch-free inference: everything here imports only NumPy, ONNX Runtime, OpenCV and Pillow,
so a Raspberry Pi installs a small set of wheels. (A test imports it with torch made unavailable.)

One interface for everything that blurs (DESIGN.md §2.4): a :class:`Blurrer` takes an HWC uint8
RGB image and returns a :class:`BlurResult`. ``compare`` and ``blur`` never branch on the kind.
"""

from .base import Blurrer, BlurResult, DetectorBlurrer, ImageModel, ModelBlurrer, OracleBlurrer, difference_mask

__all__ = ["Blurrer", "BlurResult", "DetectorBlurrer", "ImageModel", "ModelBlurrer", "OracleBlurrer", "difference_mask"]
