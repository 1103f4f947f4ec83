#!/usr/bin/env bash
# Build TensorRT engines on the Jetson from unetblur's ONNX files (run it ON the Jetson: engines are
# specific to the GPU and TensorRT version that built them).
#
#   export/jetson/build_engine.sh MODEL.onnx int8|fp16 [MAX_W MAX_H]
#
# int8: MODEL must be the QDQ file made for TensorRT:
#         unetblur export model.pt --int8 --int8-target tensorrt --calib-data DATA
#       (symmetric int8 activations; TensorRT rejects the uint8/zero-point CPU flavour). TensorRT
#       then uses the scales in the file (explicit quantisation): no calibration cache on the device.
# fp16: MODEL is the FP32 file (TensorRT lowers it to FP16 itself; better than the .fp16.onnx).
#
# The engine is built for batch 1 and sizes from 128x128 up to MAX_W x MAX_H (default 1280x720,
# rounded up to the model's stride), tuned for MAX.
set -euo pipefail
ONNX=${1:?usage: build_engine.sh MODEL.onnx int8|fp16 [MAX_W MAX_H]}
MODE=${2:?give int8 or fp16}
MAX_W=${3:-1280}
MAX_H=${4:-720}
TRTEXEC=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}
# The stride is in the ONNX metadata (onnxruntime reads it; no torch needed).
STRIDE=$(python3 -c "from unetblur.runtime.onnx import read_onnx_metadata as m; print(m('$ONNX').get('stride', 32))" 2>/dev/null || echo 32)
round() { echo $(( ($1 + STRIDE - 1) / STRIDE * STRIDE )); }
W=$(round "$MAX_W"); H=$(round "$MAX_H"); MIN=$(round 128)
SHAPES="--minShapes=image:1x3x${MIN}x${MIN} --optShapes=image:1x3x${H}x${W} --maxShapes=image:1x3x${H}x${W}"
BASE=${ONNX%.onnx}; BASE=${BASE%.int8}; BASE=${BASE%.fp16}
ENGINE="${BASE}.${MODE}.plan"          # student.int8.onnx → student.int8.plan, student.onnx → student.fp16.plan
case "$MODE" in
  int8) FLAGS="--int8 --fp16" ;;   # layers left unquantised (e.g. the sigmoid head) may run in FP16
  fp16) FLAGS="--fp16" ;;
  *) echo "mode must be int8 or fp16, got $MODE" >&2; exit 2 ;;
esac
set -x
"$TRTEXEC" --onnx="$ONNX" $FLAGS $SHAPES --saveEngine="$ENGINE" --memPoolSize=workspace:1024
# Latency of the engine at full size (GPU compute time is the number to compare):
"$TRTEXEC" --loadEngine="$ENGINE" --shapes=image:1x3x${H}x${W} --warmUp=500 --iterations=100 --avgRuns=100
