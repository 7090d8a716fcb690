## Direct 2-D convolution, one output element per work-item: for depthwise layers and small
## reductions, where an implicit GEMM has too little to reduce over.
## in_nchw=False: x is NHWC; work-item (k, ow, n * P + oh): neighbouring work-items, neighbouring channels.
## in_nchw=True:  x is NCHW; work-item (ow, oh, n * K + k): neighbouring work-items, neighbouring pixels
##                (contiguous reads of x and, with out_nchw, contiguous writes: what CPU vectorisers need).
## Weights are (G, R, S, Cg, Kg). Defines: dtype, has_bias, in_nchw, out_nchw, and the filter's shape as
## constants (kr, ks, kcg, kkg, kgroups: R, S, Cg, Kg, groups), so the compiler unrolls the window and,
## with one group or one channel per group, sees which reads neighbouring work-items share.
<%
    T = ctype(dtype)
    half = T == "half_t"
    ACC = "double" if T == "double" else "float"
    def load(ptr, idx):
        return f"LOAD_HALF({ptr}, {idx})" if half else f"{ptr}[{idx}]"
%>
KERNEL void conv2d_direct(
    GLOBAL_MEM ${T}* RESTRICT y,
    GLOBAL_MEM const ${T}* RESTRICT x,
    GLOBAL_MEM const ${T}* RESTRICT w,
    GLOBAL_MEM const ${T}* RESTRICT bias,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t P, const index_t Q, const index_t K,
    const index_t R, const index_t S, const index_t Cg, const index_t Kg,
    const index_t sh, const index_t sw, const index_t ph, const index_t pw,
    const index_t dh, const index_t dw)
{
% if in_nchw:
    const index_t ow = GLOBAL_ID(0);
    const index_t oh = GLOBAL_ID(1);
    const index_t nk = GLOBAL_ID(2);
    if (ow < Q && oh < P && nk < N * K) {
        const index_t n = nk / K, k = nk % K;
% else:
    const index_t k = GLOBAL_ID(0);
    const index_t ow = GLOBAL_ID(1);
    const index_t nph = GLOBAL_ID(2);
    if (k < K && ow < Q && nph < N * P) {
        const index_t n = nph / P, oh = nph % P;
% endif
% if kgroups == 1:
        const index_t g = 0, kk = k;
% elif kcg == 1 and kkg == 1:
        const index_t g = k, kk = 0;
% else:
        const index_t g = k / ${kkg}, kk = k % ${kkg};
% endif
        GLOBAL_MEM const ${T}* wg = w + g * ${kr * ks * kcg} * Kg + kk;
% if in_nchw:
        GLOBAL_MEM const ${T}* xg = x + (n * C + g * ${kcg}) * H * W;
% else:
        GLOBAL_MEM const ${T}* xg = x + n * H * W * C + g * ${kcg};
% endif
        ${ACC} acc = (${ACC})0;
        #pragma unroll
        for (index_t r = 0; r < ${kr}; ++r) {
            // no branches: the padding reads a valid address and counts it zero (vectorisers keep lanes together)
            const index_t ih_raw = oh * sh - ph + r * dh;
            const int row_in = ih_raw >= 0 && ih_raw < H;
            const index_t ih = row_in ? ih_raw : 0;
            #pragma unroll
            for (index_t s = 0; s < ${ks}; ++s) {
                const index_t iw_raw = ow * sw - pw + s * dw;
                const int inside = row_in && iw_raw >= 0 && iw_raw < W;
                const index_t iw = inside ? iw_raw : 0;
                const ${ACC} mask = inside ? (${ACC})1 : (${ACC})0;
                const index_t wo = (r * ${ks} + s) * ${kcg} * Kg;
                #pragma unroll
                for (index_t c = 0; c < ${kcg}; ++c) {
% if in_nchw:
                    const index_t xo = (c * H + ih) * W + iw;
% else:
                    const index_t xo = (ih * W + iw) * C + c;
% endif
                    acc = FMA((${ACC})${load("xg", "xo")} * mask, (${ACC})${load("wg", "wo + c * Kg")}, acc);
                }
            }
        }
% if has_bias:
        acc += (${ACC})${load("bias", "k")};
% endif
% if out_nchw:
        const index_t at = ((n * K + k) * P + oh) * Q + ow;
% else:
        const index_t at = ((n * P + oh) * Q + ow) * K + k;
% endif
% if half:
        STORE_HALF(y, at, acc);
% else:
        y[at] = acc;
% endif
    }
}
