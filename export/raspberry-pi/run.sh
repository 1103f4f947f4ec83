#!/usr/bin/env bash
# Blur faces on a Raspberry Pi with an INT8 model (the file from `unetblur export --int8`, made
# for CPUs: --int8-target cpu, the default).
#   bash export/raspberry-pi/run.sh student.int8.onnx INPUT -o OUTPUT [more run_onnx.py options]
# Thread settings: one ONNX Runtime intra-op thread per core (Pi 4 and 5: 4). Lower THREADS to leave
# a core free for video decoding/encoding. A smaller --working-size (composite mode) is the main
# speed knob: cost grows with the pixels the network sees.
set -euo pipefail
. "${VENV:-$HOME/unetblur-venv}/bin/activate"
MODEL=${1:?usage: run.sh MODEL.onnx INPUT [-o OUTPUT] [...]}; shift
exec python "$(dirname "$0")/../run_onnx.py" "$MODEL" "$@" --threads "${THREADS:-$(nproc)}" \
  --providers CPUExecutionProvider --working-size "${WORKING_SIZE:-480}"
