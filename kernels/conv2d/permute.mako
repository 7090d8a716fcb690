## out[o0][o1][o2][o3] = in[o0 * s0 + o1 * s1 + o2 * s2 + o3 * s3]: any permutation of up to 4 axes
## (layout changes: NCHW <-> NHWC, weights to the implicit-GEMM order); the last axis is d3p long, its
## entries past d3 zeros (weights padded to whole column tiles). Defines: dtype.
## Work-item (o3, o2, o0 * d1 + o1): neighbouring work-items write neighbouring elements, and the only
## division is the same for a whole row of them (per-element divisions cost CPU runtimes 3 ns each).
## A copy needs no arithmetic: float16 moves as the 16-bit integer of the same bits.
<% P = ctype(dtype); T = "unsigned short" if storage_suffix(P) else P %>
KERNEL void permute(
    GLOBAL_MEM ${P}* RESTRICT out_,
    GLOBAL_MEM const ${P}* RESTRICT in_,
    const index_t d0, const index_t d1, const index_t d2, const index_t d3,
    const index_t s0, const index_t s1, const index_t s2, const index_t s3, const index_t d3p)
{
    // float16 moves as the 16-bit integer of the same bits
    GLOBAL_MEM ${T}* out = (GLOBAL_MEM ${T}*)out_;
    GLOBAL_MEM const ${T}* in = (GLOBAL_MEM const ${T}*)in_;
    const index_t o3 = GLOBAL_ID(0);
    const index_t o2 = GLOBAL_ID(1);
    const index_t o01 = GLOBAL_ID(2);
    if (o3 < d3p && o2 < d2 && o01 < d0 * d1) {
        const index_t o0 = o01 / d1, o1 = o01 % d1;
        out[((o01 * d2) + o2) * d3p + o3] = o3 < d3 ? in[o0 * s0 + o1 * s1 + o2 * s2 + o3 * s3] : (${T})0;
    }
}
