"""``unetblur data build | synth | check``: make and validate paired datasets."""

from __future__ import annotations

import sys

from ..errors import EXIT_FINDINGS, EXIT_OK
from ._config import add_blur_flags, add_config_flags, config_from_args


def register(sub) -> None:
    p = sub.add_parser("data", help="build, synthesise and check paired datasets",
                       description="Make paired datasets in the layout train/ train_blur/ train_mask/ val/ ... test/ ...")
    verbs = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    b = verbs.add_parser("build", help="raw photos + face boxes (annotations or a detector) → paired dataset",
                         description="Build a paired dataset from raw photos. Pointed at an official layout "
                                     "(WIDER FACE, FDDB, CelebA, COCO/YOLO/VOC/LabelMe exports) it finds the "
                                     "annotations itself; --annotations names them; --detector makes boxes.")
    b.add_argument("source", help="folder of raw photos (or the root of an official dataset layout)")
    b.add_argument("-o", "--out", required=True, help="output dataset folder (must be empty unless --overwrite)")
    add_config_flags(b)
    src = b.add_mutually_exclusive_group()
    src.add_argument("--annotations", metavar="FILE", help="annotation file or folder (format detected)")
    src.add_argument("--detector", metavar="NAME", help="make boxes with a detector: centerface, haar or file:PATH")
    b.add_argument("--fill-gaps", metavar="DETECTOR",
                   help="with annotations: faces this detector finds (centerface, haar, file:PATH) that no annotated "
                        "box covers are added to the TRAIN split's targets, so a student is not taught that faces "
                        "the annotators skipped are background; val and test keep the annotations as they are")
    b.add_argument("--fill-gaps-score", type=float, metavar="S", help="score a gap-filling detection needs (default 0.7)")
    b.add_argument("--format", choices=("wider", "fddb", "yolo", "voc", "coco", "labelme", "celeba", "plain"),
                   help="annotation format (default: detected from the file)")
    b.add_argument("--mode", choices=("letterbox", "crops"), help="framing (default letterbox, the thesis)")
    b.add_argument("--size", type=int, help="stored image side in pixels (default 128)")
    b.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="shares (default 0.8 0.1 0.1)")
    b.add_argument("--seed", type=int, help="split and crop seed (default 0)")
    b.add_argument("--workers", type=int, help="worker processes (default 1)")
    b.add_argument("--zero-pad", action="store_true", default=None, help="name images 00000.png ... (the thesis)")
    b.add_argument("--overwrite", action="store_true", default=None, help="replace a non-empty output folder")
    b.add_argument("--limit", type=int, help="use only N source photos (seeded choice)")
    b.add_argument("--crops-per-image", type=int, help="crops mode: face-centred crops per photo (default 4)")
    b.add_argument("--empty-share", type=float, help="crops mode: share of face-free crops (default 0.2)")
    b.add_argument("--scale-jitter", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="crops mode: window side = size × factor in [LOW, HIGH] (default 0.8 1.25)")
    b.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    add_blur_flags(b, "blur (the target definition, see unetblur.blur; the same flags as `blur`)")
    b.set_defaults(func=run_build)

    s = verbs.add_parser("synth", help="procedurally drawn faces on photo backgrounds (no downloads)",
                         description="Draw a synthetic paired dataset: cartoon faces with varied skin, features, "
                                     "glasses, hats, rotation and scale on crops of scikit-image's bundled photos, "
                                     "plus face-like distractors that must not be blurred.")
    s.add_argument("-o", "--out", required=True, help="output dataset folder (must be empty unless --overwrite)")
    add_config_flags(s)
    s.add_argument("--count", type=int, help="number of images over all splits (default 2000)")
    s.add_argument("--size", type=int, help="image side in pixels (default 128)")
    s.add_argument("--seed", type=int, help="seed (default 0); same seed, same dataset")
    s.add_argument("--split", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="shares (default 0.8 0.1 0.1)")
    s.add_argument("--max-faces", type=int, help="most faces per image (default 5)")
    s.add_argument("--workers", type=int, help="worker processes (default 1)")
    s.add_argument("--overwrite", action="store_true", default=None, help="replace a non-empty output folder")
    s.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    add_blur_flags(s, "blur (the target definition, see unetblur.blur; the same flags as `blur`)")
    s.set_defaults(func=run_synth)

    m = verbs.add_parser("samples", help="write a synthetic sample photo and video (with audio) to try `blur` on",
                         description="Write sample.jpg, sample.mp4 (a pan across the photo, with a sound track) and "
                                     "sample_faces.jsonl (their ground-truth faces), drawn like `data synth`.")
    m.add_argument("-o", "--out", required=True, help="output folder")
    m.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    m.add_argument("--frames", type=int, default=48, help="video frames (default 48, 2 s at 24 fps)")
    m.set_defaults(func=run_samples)

    g = verbs.add_parser("merge", help="one dataset folder from several built ones (train on WIDER + FDDB)",
                         description="Hard-link several built datasets into one folder of the same layout; each "
                                     "part keeps its splits, stems get the part's name as a prefix.")
    g.add_argument("parts", nargs="+", metavar="[NAME=]DIR", help="built dataset folders (same blur, mode, size)")
    g.add_argument("-o", "--out", required=True, help="output dataset folder (must be empty unless --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    g.set_defaults(func=run_merge)

    c = verbs.add_parser("check", help="validate a dataset folder; exit 1 if anything is wrong",
                         description="Check pairing across train/ train_blur/ train_mask/ (and val, test), "
                                     "equal sizes, mask values in {0, 255}, and the manifest's counts.")
    c.add_argument("dataset", help="dataset folder")
    c.set_defaults(func=run_check)


def run_build(args) -> int:
    from ..data.build import BuildConfig, build_dataset, summary_lines

    cfg = config_from_args(BuildConfig, args)
    if cfg is None:
        return EXIT_OK
    report = build_dataset(cfg)
    for line in summary_lines(report):
        print(line, file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FINDINGS


def run_synth(args) -> int:
    from ..data.synth import SynthConfig, synthesize_dataset

    cfg = config_from_args(SynthConfig, args)
    if cfg is None:
        return EXIT_OK
    manifest = synthesize_dataset(cfg)
    c = manifest["counts"]
    print(f"synthesised {cfg.out}: train {c['train']} / val {c['val']} / test {c['test']} images, "
          f"{manifest['faces_total']} faces, {manifest['distractors_total']} distractors in {manifest['seconds']} s",
          file=sys.stderr)
    return EXIT_OK


def run_samples(args) -> int:
    from ..data.samples import write_sample_media
    from ..errors import UnetblurError

    if args.frames < 1:
        raise UnetblurError(f"--frames must be at least 1, got {args.frames}")
    paths = write_sample_media(args.out, seed=args.seed, frames=args.frames)
    print(f"wrote {paths['image']}, {paths['video']} and {paths['faces']}", file=sys.stderr)
    return EXIT_OK


def run_merge(args) -> int:
    from ..data.merge import merge_datasets, parse_part

    m = merge_datasets([parse_part(p) for p in args.parts], args.out, args.overwrite)
    c = m["counts"]
    print(f"merged {args.out}: {', '.join(p['name'] for p in m['parts'])}; train {c['train']} / val {c['val']} / "
          f"test {c['test']} images, {m['faces_total']} faces", file=sys.stderr)
    return EXIT_OK


def run_check(args) -> int:
    from ..data.check import check_dataset

    problems, summary = check_dataset(args.dataset)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    print(summary, file=sys.stderr)
    return EXIT_FINDINGS if problems else EXIT_OK
