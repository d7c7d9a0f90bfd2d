"""Compile svimg's Triton kernels for a CUDA architecture on a machine without a GPU.

Triton's CUDA backend and the ptxas bundled with the triton wheel need no
device, so this checks what the interpreter cannot: that the kernels pass the
real compiler for every storage dtype.  Run it WITHOUT ``TRITON_INTERPRET``::

    python tests/_triton_aot.py --arch 90 --dtypes float32 bfloat16

It prints one line per kernel and dtype with the PTX global-memory
instructions, e.g. ``band float32: ld.global.v4.b32 ...`` (128-bit vector
loads: consecutive threads read consecutive pixels), with 256-pixel tiles and
the warps ``tiling`` would choose.  Pointers and P are
declared 16-divisible, as the JIT finds them for contiguous tensors with P a
multiple of 16.  Exit status 1 on any compile error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("unset TRITON_INTERPRET: the interpreter does not compile")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from svimg._kernels import triton_cg, triton_temporal  # noqa: E402

TYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def _specs(ty: str):
    """(label, kernel, signature, constexprs) for storage type ``ty`` (a Triton type name)."""
    acc, wty = (tl.float64, "*fp64") if ty == "fp64" else (tl.float32, "*fp32")
    vol, f64, i32 = f"*{ty}", "*fp64", "i32"
    band = dict(x_ptr=vol, cols_ptr="*i32", w_ptr=wty, out_ptr=vol, dot_ptr=f64, T=i32, P=i32, FRAMES=i32,
                W="constexpr", BLOCK_P="constexpr", ACC="constexpr", DOT="constexpr")
    update = dict(x_ptr=vol, r_ptr=vol, p_ptr=vol, hp_ptr=vol, pq_parts_ptr=f64, rr_parts_ptr=f64, old_ptr=f64,
                  new_ptr=f64, T=i32, P=i32, FRAMES=i32, G=i32, BLOCK_P="constexpr", G_BLOCK="constexpr",
                  ACC="constexpr")
    direction = dict(r_ptr=vol, p_ptr=vol, rr_parts_ptr=f64, old_ptr=f64, new_ptr=f64, T=i32, P=i32, FRAMES=i32,
                     G=i32, BLOCK_P="constexpr", G_BLOCK="constexpr", ACC="constexpr")
    cg_meta = dict(BLOCK_P=256, G_BLOCK=1024, ACC=acc)
    return [
        ("band", triton_temporal._band_kernel, band, dict(W=13, BLOCK_P=256, ACC=acc, DOT=False)),
        ("band+dot", triton_temporal._band_kernel, band, dict(W=25, BLOCK_P=256, ACC=acc, DOT=True)),
        ("cg-update", triton_cg._update_kernel, update, cg_meta),
        ("cg-direction", triton_cg._direction_kernel, direction, cg_meta),
    ]


def compile_all(arch: int, dtypes: list[str]) -> int:
    target = GPUTarget("cuda", arch, 32)
    failures = 0
    for name in dtypes:
        for label, kernel, signature, constexprs in _specs(TYPES[name]):
            assert list(signature) == kernel.arg_names, (label, kernel.arg_names)
            aligned = [(i,) for i, a in enumerate(kernel.arg_names) if a.endswith("_ptr") or a == "P"]
            attrs = {key: [["tt.divisibility", 16]] for key in aligned}
            try:
                compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                                          options={"num_warps": triton_temporal.warps_for(256, ITEMSIZE[name])})
            except Exception as err:  # report every failing kernel, then fail
                failures += 1
                print(f"{label} {name}: FAILED {type(err).__name__}: {err}")
                continue
            ops = sorted(set(re.findall(r"(?:ld|st)\.global[.\w]*", compiled.asm["ptx"])))
            print(f"{label} {name}: {' '.join(ops)}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100/H200, 89: RTX 4090)")
    parser.add_argument("--dtypes", nargs="+", choices=list(TYPES), default=list(TYPES))
    args = parser.parse_args(argv)
    return 1 if compile_all(args.arch, args.dtypes) else 0


if __name__ == "__main__":
    sys.exit(main())
