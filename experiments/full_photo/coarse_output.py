"""Rewrite a strided-stem student exported before ``output_stride`` existed so its graph ends at the
stem's resolution, as ``unetblur export`` now writes it. Same weights; no torch needed.

Such a file ends ``Sigmoid → (Q/DQ) → Resize ×s → (Q/DQ) → output``: the bilinear upsampling of all
four channels to the working size, quantised, which took as long as the network before it. This drops
the Resize and what follows it, and stamps ``output_stride`` = the spec's ``stem_stride``; the runtime
then upsamples only what it uses, with the same bilinear rule (``unetblur.runtime.onnx.upsample_output``).

    python experiments/full_photo/coarse_output.py OLD.int8.onnx NEW.int8.onnx

Used once, for the stage-7 student whose training run (and FP32 weights) did not survive a machine
change; a student exported from its ``model.pt`` today needs nothing of this.
"""

from __future__ import annotations

import argparse
import json
import sys

from unetblur.errors import UnetblurError

TAIL_OPS = {"Resize", "QuantizeLinear", "DequantizeLinear"}


def coarse_output(src: str, dst: str) -> int:
    """Write ``dst``: ``src`` without its final upsampling; returns the output stride stamped."""
    import onnx
    from onnx import TensorProto, helper

    from unetblur.deploy.onnx_export import set_metadata
    from unetblur.runtime.onnx import META_OUTPUT_STRIDE

    model = onnx.load(src)
    meta = {p.key: p.value for p in model.metadata_props}
    if META_OUTPUT_STRIDE in meta:
        raise UnetblurError(f"{src}: already has output_stride {meta[META_OUTPUT_STRIDE]}; nothing to rewrite")
    try:
        stride = int(json.loads(meta["spec"])["stem_stride"])
    except (KeyError, ValueError, TypeError):
        raise UnetblurError(f"{src}: no U-Net spec with a stem_stride in its metadata; not a unetblur export") from None
    nodes = list(model.graph.node)
    resizes = [i for i, n in enumerate(nodes) if n.op_type == "Resize"]
    if stride < 2 or len(resizes) != 1 or any(n.op_type not in TAIL_OPS for n in nodes[resizes[0]:]):
        raise UnetblurError(f"{src}: does not end in the one upsampling of a strided stem (stem_stride {stride})")
    coarse = nodes[resizes[0]].input[0]
    output = model.graph.output[0].name
    del model.graph.node[resizes[0]:]
    for node in model.graph.node:  # the coarse tensor becomes the graph's output, under its old name
        node.output[:] = [output if name == coarse else name for name in node.output]
        node.input[:] = [output if name == coarse else name for name in node.input]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                            ["batch", None, "out_height", "out_width"]))
    set_metadata(model, {META_OUTPUT_STRIDE: str(stride)})
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    return stride


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="an INT8/FP32 export whose graph ends in the stem's upsampling")
    p.add_argument("dst", help="where to write the rewritten file (never the source)")
    args = p.parse_args(argv)
    try:
        if args.src == args.dst:
            raise UnetblurError("write the rewritten file elsewhere: inputs are never overwritten")
        stride = coarse_output(args.src, args.dst)
    except UnetblurError as exc:
        print(f"coarse_output: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dst}: output_stride {stride}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
