## out[o0][o1][o2][o3] = in[o0 * s0 + o1 * s1 + o2 * s2 + o3 * s3]: any permutation of up to 4 axes
## (layout changes: NCHW <-> NHWC, weights to the implicit-GEMM order). Defines: dtype.
## Work-item (o3, o2, o0 * d1 + o1): neighbouring work-items write neighbouring elements, and the only
## division is the same for a whole row of them (per-element divisions cost CPU runtimes 3 ns each).
## A copy needs no arithmetic: float16 moves as the 16-bit integer of the same bits.
<% T = "unsigned short" if ctype(dtype) == "half_t" else ctype(dtype) %>
KERNEL void permute(
    GLOBAL_MEM ${T}* RESTRICT out,
    GLOBAL_MEM const ${T}* RESTRICT in,
    const index_t d0, const index_t d1, const index_t d2, const index_t d3,
    const index_t s0, const index_t s1, const index_t s2, const index_t s3)
{
    const index_t o3 = GLOBAL_ID(0);
    const index_t o2 = GLOBAL_ID(1);
    const index_t o01 = GLOBAL_ID(2);
    if (o3 < d3 && o2 < d2 && o01 < d0 * d1) {
        const index_t o0 = o01 / d1, o1 = o01 % d1;
        out[((o01 * d2) + o2) * d3 + o3] = in[o0 * s0 + o1 * s1 + o2 * s2 + o3 * s3];
    }
}
