## Kernels that measure a device: memory bandwidth, the FMA ceiling, launch latency.
##
## Defines: dtype (float32 or float64), chains (independent scalar FMA chains per work-item), vchains and
## vw (the vector kernel's chains and width).
<% T = ctype(dtype) %>
## One element per work-item: coalesced on GPUs; PoCL streams it well, Intel's CPU runtime less so
## (xgpu bench device also times the driver's own copy and reports the faster).
KERNEL void copy(GLOBAL_MEM ${T}* RESTRICT dst, GLOBAL_MEM const ${T}* RESTRICT src, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        dst[i] = src[i];
    }
}

## Each work-item runs ${chains} independent multiply-add chains (enough to hide FMA latency, and
## independent across work-items so that CPU runtimes vectorise them), then stores their sum so that
## no compiler can drop the work.
KERNEL void fma_peak(GLOBAL_MEM ${T}* RESTRICT out, const ${T} a, const ${T} b, const int iterations)
{
    const index_t gid = GLOBAL_ID(0);
% for c in range(chains):
    ${T} x${c} = (${T})(gid + ${c}) * (${T})1e-7;
% endfor
    for (int i = 0; i < iterations; ++i) {
% for c in range(chains):
        x${c} = FMA(x${c}, a, b);
% endfor
    }
    out[gid] = ${" + ".join(f"x{c}" for c in range(chains))};
}

## The same with short vectors (${vchains} chains of ${vw}), for compilers that vectorise within a
## work-item rather than across work-items.
KERNEL void fma_peak_vec(GLOBAL_MEM ${T}* RESTRICT out, const ${T} a, const ${T} b, const int iterations)
{
    const index_t gid = GLOBAL_ID(0);
    const VEC(${T}, ${vw}) va = VSPLAT(${T}, ${vw}, a), vb = VSPLAT(${T}, ${vw}, b);
% for c in range(vchains):
    VEC(${T}, ${vw}) x${c} = VSPLAT(${T}, ${vw}, (${T})(gid + ${c}) * (${T})1e-7);
% endfor
    for (int i = 0; i < iterations; ++i) {
% for c in range(vchains):
        x${c} = VFMA(x${c}, va, vb);
% endfor
    }
    ## vectors have no operators in the template language (only VFMA, VSPLAT, VLOAD, VSTORE): sum lanes
    ${T} lanes[${vw}], sum = (${T})0;
% for c in range(vchains):
    VSTORE(${vw}, x${c}, lanes, 0);
    sum += lanes[0] + lanes[${vw - 1}];
% endfor
    out[gid] = sum;
}

KERNEL void noop(GLOBAL_MEM ${T}* RESTRICT out)
{
    if (GLOBAL_ID(0) < 0) {
        out[0] = (${T})0;
    }
}
