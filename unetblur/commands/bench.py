"""``unetblur bench MODEL.onnx``: latency, throughput and memory under ONNX Runtime."""

from __future__ import annotations

from ._config import add_config_flags, config_from_args


def register(sub) -> None:
    p = sub.add_parser("bench", help="latency / throughput / memory of an ONNX model on ONNX Runtime",
                       description="Time an exported model (median and p10/p90 over timed runs after warm-up, "
                                   "batch 1) at each size on each available ONNX Runtime execution provider; "
                                   "prints a table and optionally writes JSON.")
    p.add_argument("model", help="ONNX file written by `unetblur export`")
    add_config_flags(p)
    p.add_argument("--sizes", help="WIDTHxHEIGHT list (default 128x128,256x256,1280x720)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")
    p.add_argument("--runs", type=int, help="timed runs per size (default 20)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default 3)")
    p.add_argument("--providers", help="execution providers, comma separated (default: each available one)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    p.add_argument("--profile", action="store_true", default=None,
                   help="also show ORT's per-operator time at the first size")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..deploy.bench import BenchConfig, benchmark, format_table

    cfg = config_from_args(BenchConfig, args)
    if cfg is None:
        return 0
    print(format_table(benchmark(cfg)))
    return 0
