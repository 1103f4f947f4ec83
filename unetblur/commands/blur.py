"""``unetblur blur``: anonymise images, folders, videos (audio kept), webcams and streams."""

from __future__ import annotations

import argparse

from ._config import add_blur_flags, add_config_flags, config_from_args


def _bool_flag(p, name: str, help: str) -> None:
    p.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction,
                   default=None, help=help)


def _scales(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be numbers like 1,0.5; got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser(
        "blur", help="anonymise faces in images, folders, videos, webcams and RTSP/HTTP streams",
        description="Blur every face in the inputs. Outputs are <stem>_blurred<ext> beside each input (or in -o); "
                    "a folder becomes <folder>_blurred/ with the same tree. Inputs are never overwritten. "
                    "Video keeps every frame, the frame rate and the audio. Streams are anonymised fail-closed. "
                    "Exit 0 ok, 1 some inputs skipped (listed at the end), 2 usage/input error.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image, video, folder, webcam[:N], or rtsp:// / http:// stream URL")
    p.add_argument("-o", "--output", help="output file (one input), folder, or rtsp:// / udp:// URL to re-stream to")
    add_config_flags(p)
    p.add_argument("--model", help="centerface[@SCALE] (default: it wins the full-photo privacy table), student "
                                   "(the packaged U-Net at its stored operating point), haar, or an exported "
                                   "U-Net (.onnx, .pt)")
    p.add_argument("--mode", choices=("composite", "raw"),
                   help="U-Nets: composite = network finds faces, full-resolution blur, background pixel-exact "
                        "(default); raw = the network's output is the image (the thesis)")
    _bool_flag(p, "recursive", "include subfolders of folder inputs (the tree is kept)")
    _bool_flag(p, "overwrite", "replace existing outputs (inputs are never overwritten)")
    _bool_flag(p, "skip-existing", "leave existing outputs alone and continue (resume an interrupted batch/shard)")
    _bool_flag(p, "keep-metadata", "keep EXIF (incl. GPS) in images; stripped by default")
    p.add_argument("--working-size", type=int, metavar="PX",
                   help="composite: run the network with the longer side at most PX pixels (default: the model's "
                        "operating point, else 1920: native up to 1080p, so a 48 MP photo does not need gigabytes; "
                        "0 = always native)")
    p.add_argument("--scales", type=_scales, metavar="S,S", help="composite: passes at these fractions of the "
                                                                "working size, masks OR-ed (default 1; e.g. 1,0.5)")
    p.add_argument("--threshold", type=float, help="composite: mask probability counted as face (default: the model's "
                                                    "operating point, else 0.5)")
    p.add_argument("--dilate", type=int, metavar="PX", help="composite: grow the face mask by PX pixels (default 0)")
    p.add_argument("--grow", type=float, metavar="F", help="composite: scale each found face by F before blurring "
                                                          "(default: the model's operating point, else 1)")
    p.add_argument("--min-peak", type=float, metavar="P",
                   help="composite: keep a found region only if its mask peaks at ≥ P; with --threshold below P the "
                        "region's extent follows the lower threshold (default: the model's operating point, else 0)")
    p.add_argument("--small-area", type=int, metavar="PX",
                   help="composite: a region smaller than PX working pixels is kept when it peaks at ≥ --small-peak "
                        "instead of --min-peak (a small false positive costs little background; default: the "
                        "model's operating point, else 0 = off)")
    p.add_argument("--small-peak", type=float, metavar="P",
                   help="composite: the mask peak a region below --small-area needs (default: the model's operating "
                        "point, else 0)")
    p.add_argument("--hold-frames", type=int, metavar="K",
                   help="video/streams: keep a lost face blurred for K more frames (default 3; 0 = off)")
    add_blur_flags(p, "blur (the same flags and YAML keys as `data build`)")
    _bool_flag(p, "save-masks", "also write the blurred-region mask (<out>_mask.png / <out>_mask.mp4)")
    _bool_flag(p, "save-json", "also write the blurred regions and scores (<out>.json / <out>.jsonl per frame)")
    p.add_argument("--codec", help="video encoder (default libx264; libvpx-vp9 for .webm)")
    p.add_argument("--crf", type=int, help="video quality, lower is better (default 18)")
    p.add_argument("--preset", help="x264/x265 speed preset (ultrafast … veryslow)")
    p.add_argument("--no-audio", dest="audio", action="store_false", default=None, help="drop the audio of videos")
    p.add_argument("--threads", type=int, help="inference threads (default: the backend's)")
    p.add_argument("--workers", type=int, help="images processed in parallel (default: one per core)")
    p.add_argument("--shard", metavar="I/N", help="process only every N-th file starting at I (split a dataset "
                                                  "across machines); 'auto' reads RANK/WORLD_SIZE or SLURM")
    p.add_argument("--max-frames", type=int, help="webcam/streams: stop after this many frames")
    _bool_flag(p, "progress", "progress bar with frames/s (default on when stderr is a terminal)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..anonymise import BlurConfig, anonymise
    cfg = config_from_args(BlurConfig, args, inputs=list(args.inputs))
    if cfg is None:
        return 0
    summary = anonymise(cfg)
    print(summary.format(), file=sys.stderr)
    return summary.exit_code
