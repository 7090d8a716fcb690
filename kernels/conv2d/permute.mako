## out[o0][o1][o2][o3] = in[o0 * s0 + o1 * s1 + o2 * s2 + o3 * s3]: any permutation of up to 4 axes
## (layout changes: NCHW <-> NHWC, weights to the implicit-GEMM order). Defines: dtype.
## A copy needs no arithmetic: float16 moves as the 16-bit integer of the same bits.
<% T = "unsigned short" if ctype(dtype) == "half_t" else ctype(dtype) %>
KERNEL void permute(
    GLOBAL_MEM ${T}* RESTRICT out,
    GLOBAL_MEM const ${T}* RESTRICT in,
    const index_t d1, const index_t d2, const index_t d3, const index_t total,
    const index_t s0, const index_t s1, const index_t s2, const index_t s3)
{
    const index_t i = GLOBAL_ID(0);
    if (i < total) {
        const index_t o3 = i % d3;
        const index_t rest = i / d3;
        const index_t o2 = rest % d2;
        const index_t rest2 = rest / d2;
        const index_t o1 = rest2 % d1;
        const index_t o0 = rest2 / d1;
        out[i] = in[o0 * s0 + o1 * s1 + o2 * s2 + o3 * s3];
    }
}
