"""NVRTC against nvcc --cubin (what pycuda's SourceModule runs per kernel) on the library's GEMM."""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import xgpu
from xgpu.backends.cuda._nvrtc import compile_cuda
from xgpu.kernels import gemm

for dtype, trans_a, trans_b, config in gemm.all_variants():
    if dtype != "float32" or trans_a or trans_b:
        continue
    template, _name = gemm.template_for(config)
    source = xgpu.render(template, "cuda", gemm.render_defines(dtype, config.compiled(), trans_a, trans_b)).text
    start = time.perf_counter()
    compile_cuda(source, "sm_80")
    nvrtc = time.perf_counter() - start
    line = f"{config.label:24s} NVRTC {nvrtc:6.3f} s"
    if shutil.which("nvcc"):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "k.cu").write_text(source)
            start = time.perf_counter()
            subprocess.run(["nvcc", "--cubin", "-arch=sm_80", "-std=c++17", "-o", f"{tmp}/k.cubin", f"{tmp}/k.cu"],
                           check=True)
            line += f"   nvcc --cubin {time.perf_counter() - start:6.3f} s"
    print(line)
