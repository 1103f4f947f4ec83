#!/usr/bin/env bash
# Install the torch-free unetblur runtime on a Raspberry Pi 4/5 (64-bit Raspberry Pi OS / Debian
# bookworm, aarch64, Python ≥ 3.10). ONNX Runtime publishes aarch64 wheels on PyPI, so no build is
# needed. Run from a checkout of the repository:   bash export/raspberry-pi/install.sh
set -euo pipefail
if [ "$(uname -m)" != "aarch64" ]; then
  echo "warning: $(uname -m) is not aarch64; ONNX Runtime has no PyPI wheels for 32-bit ARM (use a 64-bit OS)" >&2
fi
python3 -m venv "${VENV:-$HOME/unetblur-venv}"
. "${VENV:-$HOME/unetblur-venv}/bin/activate"
python -m pip install --upgrade pip
# The package's core dependencies are exactly the runtime's: numpy, opencv-python-headless,
# onnxruntime, pillow, pyyaml, tqdm, imageio-ffmpeg. No torch.
python -m pip install .
python -c "import onnxruntime as ort, unetblur.runtime.onnx; print('onnxruntime', ort.__version__, ort.get_available_providers())"
