#!/usr/bin/env bash
# GPU readiness check for the thesis recipe (issue 15). One command, one JSON:
#
#   experiments/thesis/gpu_check.sh                 # on a CUDA machine: the real check
#   MINUTES=1 COUNT=200 experiments/thesis/gpu_check.sh   # on a CPU: the same path, CUDA parts skipped
#
# 1. probes torch (CUDA seen? how many GPUs, which) and ONNX Runtime (is CUDAExecutionProvider there?);
# 2. synthesises a dataset (`unetblur data synth`, no downloads) unless DATA names a built one;
# 3. trains the teacher for MINUTES with experiments/thesis/gpu.yaml (16-mixed precision, DataLoader
#    workers); with more than one GPU, DDP over all of them (--strategy ddp); on a CPU: 32-true
#    precision and min(4, cores) workers, so the loader path is still exercised;
# 4. exports ONNX FP32 + INT8 and benchmarks them at 128×128 on every available execution provider
#    (CUDA included when present);
# 5. writes OUT_JSON (default experiments/thesis/gpu_check.json): the probe, training images/s,
#    steps, wall time, val metrics, the benchmark rows, and which parts were skipped and why.
#
# Status: no GPU was lent to the session that wrote this script, so the committed JSON is from a
# CPU run (CUDA parts skipped); mixed precision, DDP and the CUDA execution provider have not yet
# run here. Outputs other than the JSON go to OUT (default runs/gpu_check, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/gpu_check}
OUT_JSON=${OUT_JSON:-experiments/thesis/gpu_check.json}
MINUTES=${MINUTES:-5}
COUNT=${COUNT:-2000}
DATA=${DATA:-}
UNETBLUR=${UNETBLUR:-.venv/bin/unetblur}   # the entry point: DDP re-launches it per GPU
ub() { "$UNETBLUR" "$@"; }

rm -rf "$OUT" && mkdir -p "$OUT"
start=$(date +%s)

"$PY" - "$OUT/probe.json" <<'PYEOF'
import json, os, platform, sys, torch, onnxruntime as ort
cuda = torch.cuda.is_available()
probe = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
         "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "torch_cuda_build": torch.version.cuda, "cuda_available": cuda,
         "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
         "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers()}
if cuda:  # a real kernel, not just the driver answering
    x = torch.randn(256, 256, device="cuda")
    probe["cuda_matmul_ok"] = bool(torch.isfinite(x @ x).all().item())
json.dump(probe, open(sys.argv[1], "w"), indent=2)
print(json.dumps(probe))
PYEOF
ngpu=$("$PY" -c "import json,sys; p=json.load(open(sys.argv[1])); print(len(p['gpus']))" "$OUT/probe.json")

if [ -z "$DATA" ]; then
  DATA="$OUT/data"
  ub data synth -o "$DATA" --count "$COUNT" --size 128 --workers 1 --no-progress
fi

train=(train --config experiments/thesis/teacher.yaml --config experiments/thesis/gpu.yaml --data "$DATA"
       --out "$OUT/teacher" --mask-channel --epochs 100 --max-minutes "$MINUTES" --early-stop-patience 0 --no-progress)
if [ "$ngpu" -ge 2 ]; then
  train+=(--accelerator gpu --devices "$ngpu" --strategy ddp)
elif [ "$ngpu" -eq 1 ]; then
  train+=(--accelerator gpu --devices 1)
else  # CPU: fp16 autocast is a CUDA feature; keep the workers so the loader path still runs
  cores=$(getconf _NPROCESSORS_ONLN)   # not nproc: it follows OMP_NUM_THREADS
  workers=$(( cores < 4 ? cores : 4 ))
  train+=(--accelerator cpu --precision 32-true --num-workers "$workers")
fi
t0=$(date +%s)
ub "${train[@]}"
train_s=$(( $(date +%s) - t0 ))

ub export "$OUT/teacher/model.pt" -o "$OUT/export" --name model --int8 --data "$DATA"
ub bench "$OUT/export/model.onnx" --sizes 128x128 --runs 20 --json "$OUT/bench_fp32.json"
ub bench "$OUT/export/model.int8.onnx" --sizes 128x128 --runs 20 --json "$OUT/bench_int8.json"

"$PY" - "$OUT" "$OUT_JSON" "$train_s" "$(( $(date +%s) - start ))" "${train[*]}" <<'PYEOF'
import json, sys
from pathlib import Path
import torch
out, dest, train_s, total_s, train_cmd = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
probe = json.loads((out / "probe.json").read_text())
meta = torch.load(out / "teacher" / "model.pt", map_location="cpu", weights_only=True).get("meta", {})
cfg = meta.get("config", {})
bench = []
for name in ("bench_fp32.json", "bench_int8.json"):
    b = json.loads((out / name).read_text())
    for r in b["results"]:
        bench.append({"model": Path(b["model"]).name, "provider": r["provider"], "size": r["requested"],
                      "median_ms": r.get("median_ms"), "images_per_second": round(1000 / r["median_ms"], 1)
                      if r.get("median_ms") else None, "size_kb": b.get("size_kb")})
skipped = []
if not probe["cuda_available"]:
    skipped.append("CUDA training, mixed precision and DDP: no CUDA device seen by torch")
if len(probe["gpus"]) < 2:
    skipped.append("DDP: fewer than two GPUs")
if "CUDAExecutionProvider" not in probe["ort_providers"]:
    skipped.append("ONNX on CUDAExecutionProvider: not in onnxruntime's providers (install onnxruntime-gpu)")
report = {"probe": probe, "train_command": "unetblur " + train_cmd,
          "train": {"precision": cfg.get("precision"), "accelerator": cfg.get("accelerator"),
                    "devices": cfg.get("devices"), "strategy": cfg.get("strategy"), "num_workers": cfg.get("num_workers"),
                    "batch_size": cfg.get("batch_size"), "train_images": meta.get("train_images"),
                    "images_per_second": meta.get("train_images_per_second"), "global_step": meta.get("global_step"),
                    "epochs_trained": meta.get("epochs_trained"), "stopped_by": meta.get("stopped_by"),
                    "wall_seconds": train_s, "val_psnr": (meta.get("val_metrics") or {}).get("val/psnr"),
                    "val_mse": (meta.get("val_metrics") or {}).get("val/mse")},
          "bench": bench, "skipped": skipped, "total_seconds": total_s}
dest.write_text(json.dumps(report, indent=2) + "\n")
print(f"gpu_check: {dest}: {report['train']['images_per_second']} training images/s; "
      + "; ".join(f"{b['model']} {b['provider']} {b['median_ms']} ms" for b in bench)
      + (f"; skipped: {' | '.join(skipped)}" if skipped else ""))
PYEOF
