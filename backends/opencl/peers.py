"""GEMM peers on plain pyopencl, for ``xgpu bench gemm``: CLBlast (pyclblast) and reikna's MatrixMul.

Run as ``python -m xgpu.backends.opencl.peers KIND PLATFORM DEVICE N DTYPE``; prints ``RESULT {json}``
or a one-line reason (peer not installed, ...). It never imports xgpu's OpenCL backend, so the peer
gets the device to itself.
"""

from __future__ import annotations

import json
import sys

from xgpu.tools.bench import gemm_operands, median_time, relative_error

PEERS = ["clblast", "reikna"]


def _queue(platform: str, name: str):
    import pyopencl as cl

    from xgpu.plugin import cache_dir

    from ._icd import ensure_vendor_folder

    ensure_vendor_folder(cache_dir())
    devs = [d for p in cl.get_platforms() if p.name.strip() == platform for d in p.get_devices()
            if d.name.strip() == name]
    ctx = cl.Context(devs[:1])
    return ctx, cl.CommandQueue(ctx)  # keep ctx referenced: the Intel runtime frees it under its queue


def run(kind: str, platform: str, name: str, n: int, dtype: str) -> dict:
    a, b = gemm_operands(n, dtype)
    if kind == "clblast":
        try:
            import pyclblast
        except ImportError:
            return {"error": "pyclblast not installed (see docs/benchmarks.md)"}
        import pyopencl.array as cla

        ctx, q = _queue(platform, name)
        ca, cb, cc = cla.to_device(q, a), cla.to_device(q, b), cla.zeros(q, (n, n), dtype)

        def go():
            pyclblast.gemm(q, n, n, n, ca, cb, cc, a_ld=n, b_ld=n, c_ld=n)
            q.finish()

        seconds = median_time(go)
        return {"seconds": seconds, "err": relative_error(cc.get(), a, b), "variant": ""}
    if kind == "reikna":
        try:
            from reikna.cluda import ocl_api
            from reikna.linalg import MatrixMul
        except ImportError:
            return {"error": "reikna not installed: pip install reikna"}
        ctx, q = _queue(platform, name)
        thr = ocl_api().Thread(q)
        ra, rb = thr.to_device(a), thr.to_device(b)
        rc = thr.empty_like(ra)
        mm = MatrixMul(ra, rb, out_arr=rc).compile(thr)

        def go():
            mm(rc, ra, rb)
            thr.synchronize()

        seconds = median_time(go)
        return {"seconds": seconds, "err": relative_error(rc.get(), a, b), "variant": ""}
    raise SystemExit(f"unknown peer {kind!r}")


if __name__ == "__main__":
    kind, platform, name, n, dtype = sys.argv[1:6]
    try:
        result = run(kind, platform, name, int(n), dtype)
    except Exception as exc:  # a peer failing is a row of the report, not a crash of the benchmark
        result = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    print("RESULT " + json.dumps(result))
