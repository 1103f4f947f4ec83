"""``unetblur train``: train a teacher U-Net (Lightning) into a run folder."""

from __future__ import annotations

import argparse

from ._config import add_config_flags, run_library


def _bool_flag(p, name: str, help: str) -> None:
    p.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction,
                   default=None, help=help)


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a teacher U-Net on a paired dataset (Lightning; CPU, GPU, multi-GPU)",
        description="Train a U-Net to map original → blurred on a dataset folder made by `unetblur data build`. "
                    "Writes config.yaml, metrics.csv, checkpoints/, model.pt and curve PNGs into --out. "
                    "Settings: defaults ← each --config YAML in order ← flags.")
    p.add_argument("--data", help="dataset folder (train/ train_blur/ train_mask/ val/ ...), or several as DIR1,DIR2")
    add_config_flags(p)
    p.add_argument("--model", help="preset (teacher, student_v1, student_v2, tiny), smp:<encoder> "
                                   "(e.g. smp:resnet18, random init), a UNetSpec YAML file, or a unetblur model file "
                                   "(.pt: fine-tune its weights) (default teacher)")
    _bool_flag(p, "mask-channel", "extra output channel predicting the face mask (BCE against *_mask)")
    p.add_argument("--mask-weight", type=float, help="weight of the mask channel's loss (default 0.1)")
    p.add_argument("--mask-loss", choices=("bce", "bce_dice", "bce_dice_balanced"),
                   help="mask channel loss: bce (default), bce_dice (adds soft Dice: recall of small faces) or "
                        "bce_dice_balanced (both, each small face weighted as a ~30-px one)")
    p.add_argument("--hard-negative-weight", type=float, metavar="W",
                   help="background pixels of the mask BCE weigh 1 + W·p² (p: the predicted face probability), "
                        "so confident false positives cost more (default 0 = off)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--lr-decay", choices=("exponential", "plateau", "none"))
    p.add_argument("--lr-gamma", type=float, help="decay factor per epoch (exponential) or per plateau (default 0.95)")
    p.add_argument("--lr-patience", type=int, help="plateau: epochs without val improvement before a decay (default 3)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--loss", choices=("mse", "face_weighted"), help="mse (the thesis) or face_weighted")
    p.add_argument("--face-weight", type=float, help="face_weighted: weight of face pixels (default 5)")
    p.add_argument("--ssim-weight", type=float, help="add ssim_weight·(1−SSIM) to the loss (default 0)")
    p.add_argument("--early-stop-patience", type=int, help="epochs without val improvement before stopping (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run folder (default runs/teacher)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue the run in --out from checkpoints/last.ckpt (after an interruption)")
    p.add_argument("--accelerator", help="auto (default), cpu, gpu, cuda, mps")
    p.add_argument("--devices", help="devices per node: auto, a count (2) or a list (0,1)")
    p.add_argument("--num-nodes", type=int, help="machines for multi-node DDP (default 1)")
    p.add_argument("--strategy", help="auto (default), ddp, ddp_spawn, ...")
    p.add_argument("--precision", help="32-true (default), 16-mixed, bf16-mixed")
    p.add_argument("--num-workers", type=int, help="data loader worker processes (default 0)")
    p.add_argument("--crop-size", type=int, help="random training crops / centre val crops of this side")
    _bool_flag(p, "augment", "horizontal flips (and crops) for training (default on)")
    p.add_argument("--zoom", type=float, help="with --crop-size: training crops zoom in up to this factor (default 1: off)")
    p.add_argument("--dim", type=float, metavar="P", help="share of training samples made darker and flatter, input "
                                                         "and target alike (default 0: off)")
    p.add_argument("--soften", type=float, metavar="P", help="share of training samples given one small Gaussian "
                                                            "blur, input and target alike (default 0: off)")
    p.add_argument("--rotate", type=float, metavar="P", help="share of training samples rotated by up to ±30°, input, "
                                                            "target and masks alike (default 0: off)")
    p.add_argument("--occlude", type=float, metavar="P", help="share of training samples with one face partly hidden "
                                                             "(its mask kept whole; default 0: off)")
    p.add_argument("--paste", type=float, metavar="P", help="share of training samples given a smaller copy (0.4-0.8x) "
                                                           "of one of their faces elsewhere (default 0: off)")
    _bool_flag(p, "cache-images", "keep decoded samples in memory after their first read (~1.6 MB per 480×480 "
                                  "sample and loader worker; saves the PNG decoding, a sixth of a CPU step)")
    p.add_argument("--limit", type=int, help="use at most this many images per split (smoke runs)")
    p.add_argument("--max-minutes", type=float, help="stop cleanly after this many minutes of training")
    p.add_argument("--checkpoint-every-n-steps", type=int, help="also save last.ckpt every N steps (default 50)")
    _bool_flag(p, "progress", "progress bar and model summary (default on)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.fit import TrainConfig, train

    return run_library(TrainConfig, train, args)
