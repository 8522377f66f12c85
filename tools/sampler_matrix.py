"""Print the sampler × schedule-type matrix: our HTTP API's pixels against A1111's algorithm re-run independently.

    .venv/bin/python tools/sampler_matrix.py [--sampler NAME ...] [--steps 10] [--img2img 0.6] [--threads 1]

Each row is one ``/sdapi/v1/txt2img`` request on the shipped demo model (64×64, CFG 7, batch 2, seeds 1234 and
1235) compared with ``tests/a1111_reference.py``: max and mean |diff| in 1/255 and the seconds both took. The
goal is max ≤ 1 everywhere (``tests/server/test_sampler_matrix_api.py`` asserts it). ``--img2img D`` runs the
same matrix through ``/sdapi/v1/img2img`` at denoising D on a drawn 64×64 picture.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sampler", action="append", help="only these samplers (repeatable)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--img2img", type=float, default=None, metavar="DENOISING")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    from tests import sampler_matrix as matrix
    from tests.a1111_reference import Reference

    torch.set_num_threads(args.threads)
    reference = Reference()
    client = matrix.make_client(Path(tempfile.mkdtemp(prefix="sampler-matrix-")))
    client.post("/sdapi/v1/options", json={"show_progressbar": False})
    cases = [c for c in matrix.CASES if not args.sampler or c[0] in args.sampler]
    failed = 0
    print(f"{'sampler':18} {'schedule type':17} {'max':>4} {'mean':>8} {'s':>5}")
    for sampler, schedule in cases:
        start = time.perf_counter()
        if args.img2img is None:
            o = matrix.compare(client, reference, sampler, schedule, steps=args.steps)
        else:
            o = matrix.compare_img2img(client, reference, sampler, schedule, args.img2img, steps=args.steps)
        failed += not o.ok
        print(f"{sampler:18} {schedule:17} {o.max_diff:4d} {o.mean_diff:8.4f} {time.perf_counter() - start:5.1f}"
              + ("" if o.ok else "  DIFFERENT"), flush=True)
    print(f"{len(cases) - failed} of {len(cases)} cases within 1/255")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
