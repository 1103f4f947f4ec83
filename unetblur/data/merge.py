"""``unetblur data merge``: one dataset folder from several built ones (e.g. WIDER + FDDB).

Every downstream command (train, distill, export calibration, compare) takes one ``--data``
folder, so training on two sources needs no change anywhere else: the parts are merged into a
folder of the same layout. Files are hard-linked (copied across file systems), so a merge costs
no disk space; stems get the part's name as a prefix (``wider_00012``) so they never collide and
every image still says where it came from.

Each part keeps its own split (``data build`` splits by source photo), so a part's test photos
stay test photos. ``faces.jsonl`` records keep their faces; their ``source`` is rewritten
relative to the common folder of the parts' sources, which the merged manifest names as
``source``, so ``compare`` still finds the full-resolution originals.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from .. import __version__
from ..errors import UnetblurError
from ..faces import iter_faces_jsonl
from .build import prepare_out, publish_dataset
from .layout import FACES, SPLITS, list_samples, read_manifest, split_dirs

#: Manifest fields that must agree across parts: a merged dataset has one target definition.
SAME_ACROSS_PARTS = ("blur", "mode", "image_size", "targets_from")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def parse_part(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (name = the folder's name) → (name, folder)."""
    name, sep, folder = text.partition("=")
    if not sep:
        name, folder = Path(text).name, text
    if not _NAME.match(name) or not folder:
        raise UnetblurError(f"data merge: part {text!r} must be NAME=DIR or DIR, the name made of letters, "
                            "digits, '_' or '-'")
    return name, Path(folder)


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy is the same data
        shutil.copy2(src, dst)


def _records(root: Path) -> list[dict]:
    path = root / FACES
    return list(iter_faces_jsonl(path)) if path.is_file() else []


def merge_datasets(parts: list[tuple[str, Path]], out: str | os.PathLike, overwrite: bool = False) -> dict:
    """Merge built datasets ``parts`` ((name, folder) pairs) into ``out``; returns the merged manifest.

    Raises :class:`UnetblurError` when fewer than two parts are given, a name repeats, a part is
    not a dataset, or the parts disagree on a field of :data:`SAME_ACROSS_PARTS`.
    """
    t0 = time.time()
    out = Path(out)
    if len(parts) < 2:
        raise UnetblurError(f"data merge: give at least two dataset folders, got {len(parts)}")
    names = [n for n, _ in parts]
    if len(set(names)) != len(names):
        raise UnetblurError(f"data merge: part names must differ, got {names}; name them NAME=DIR")
    manifests = {}
    for name, root in parts:
        if not (root / "train").is_dir():
            raise UnetblurError(f"{root}: not a dataset folder (no train/); build it with `unetblur data build`")
        if root.resolve() == out.resolve():
            raise UnetblurError(f"{out}: the output folder is one of the parts; write the merge elsewhere")
        manifests[name] = read_manifest(root)
    for key in SAME_ACROSS_PARTS:
        values = {name: m.get(key) for name, m in manifests.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            raise UnetblurError(f"data merge: the parts differ in {key!r} ({values}); merge only datasets built "
                                "with the same settings")
    sources = {n: Path(m["source"]) for n, m in manifests.items() if m.get("source")}
    common = Path(os.path.commonpath([str(p) for p in sources.values()])) if len(sources) == len(parts) else None

    tmp = prepare_out(out, overwrite)
    try:
        records, counts = [], {s: 0 for s in SPLITS}
        for name, root in parts:
            for split in SPLITS:
                for sample in list_samples(root, split):
                    stem = f"{name}_{sample.stem}"
                    dst_img, dst_blur, dst_mask = split_dirs(tmp, split)
                    _link(sample.image, dst_img / f"{stem}{sample.image.suffix}")
                    _link(sample.target, dst_blur / f"{stem}{sample.target.suffix}")
                    if sample.mask is not None:
                        _link(sample.mask, dst_mask / f"{stem}{sample.mask.suffix}")
                    counts[split] += 1
            for rec in _records(root):
                image = Path(str(rec["image"]))
                rec = dict(rec, image=str(image.parent / f"{name}_{image.name}"), part=name)
                if common is not None and rec.get("source"):
                    rec["source"] = os.path.relpath(sources[name] / rec["source"], common)
                records.append(rec)
        first = manifests[names[0]]
        manifest = {
            "tool": "unetblur data merge", "version": __version__,
            "source": str(common) if common is not None else None,
            **{k: first.get(k) for k in SAME_ACROSS_PARTS},
            "parts": [{"name": n, "folder": str(r.resolve()), "source": manifests[n].get("source"),
                       "counts": manifests[n].get("counts"), "faces_total": manifests[n].get("faces_total")}
                      for n, r in parts],
            "counts": counts, "images_total": sum(counts.values()),
            "faces_total": sum(m.get("faces_total") or 0 for m in manifests.values()),
            "seconds": round(time.time() - t0, 1),
        }
        publish_dataset(tmp, out, records, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
