"""``unetblur prune``: structured channel pruning of a U-Net model file into a smaller ordinary U-Net."""

from __future__ import annotations

from ._config import add_config_flags, run_library


def register(sub) -> None:
    p = sub.add_parser(
        "prune", help="prune a U-Net's channels to a ratio or a parameter/MAC budget (Torch-Pruning)",
        description="Remove whole channels from a U-Net model file (skip connections and transposed convs stay "
                    "consistent, the output head is never pruned) and save an ordinary, smaller U-Net plus a report "
                    "(OUT.json, OUT.md: parameters, MACs, every width before → after). Fine-tune it afterwards with "
                    "`unetblur distill --student OUT.pt`. Settings: defaults ← each --config YAML ← flags.")
    p.add_argument("model", nargs="?", help="model file to prune (e.g. runs/teacher/model.pt)")
    p.add_argument("-o", "--out", help="output model file (.pt); the report goes beside it")
    add_config_flags(p)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--ratio", type=float, help="fraction of channels to remove, e.g. 0.5")
    target.add_argument("--budget-params", type=int, metavar="N", help="prune until at most N parameters remain")
    target.add_argument("--budget-macs", type=int, metavar="N", help="prune until at most N MACs at --size remain")
    p.add_argument("--size", type=int, help="input side in pixels for MAC counts and --budget-macs (default 128)")
    p.add_argument("--importance", choices=("l1", "l2", "taylor"),
                   help="channel score: weight magnitude l1/l2 (default l2) or taylor (|w·grad|, uses --data)")
    p.add_argument("--scope", choices=("local", "global"),
                   help="local: same ratio in every conv (default); global: one ranking over all convs")
    p.add_argument("--round-to", type=int, help="keep multiples of this many channels per conv, rounded up (e.g. 8)")
    p.add_argument("--min-width", type=int, help="never keep fewer channels in a conv (default 8)")
    p.add_argument("--max-ratio", type=float, help="never remove more than this fraction of one conv (default 0.9)")
    p.add_argument("--data", help="dataset folder whose train images feed the taylor criterion "
                                  "(default: synthetic faces blurred by the project's blur)")
    p.add_argument("--taylor-images", type=int, help="images for the taylor criterion (default 16)")
    p.add_argument("--seed", type=int)
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output file")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..compress.prune import PruneConfig, prune_file

    return run_library(PruneConfig, prune_file, args)
