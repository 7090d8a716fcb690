## Direct 2-D convolution, one output element per work-item: for depthwise layers and small
## reductions, where an implicit GEMM has too little to reduce over.
## in_nchw=False: x is NHWC; work-item (k, ow, n * P + oh): neighbouring work-items, neighbouring channels.
## in_nchw=True:  x is NCHW; work-item (ow, oh, n * K + k): neighbouring work-items, neighbouring pixels
##                (contiguous reads of x and, with out_nchw, contiguous writes: what CPU vectorisers need).
## Weights are (R, S, Cg, K), so that neighbouring output channels read neighbouring weights.
## Defines: dtype, has_bias, in_nchw, out_nchw; the filter's shape, strides and dilations as constants
## (kr, ks, kcg, kkg, kgroups, ksh, ksw, kdh, kdw: R, S, Cg, Kg, groups, sh, sw, dh, dw), so that the
## compiler unrolls the window and sees which reads neighbouring work-items share (a stride known only
## at run time makes CPU vectorisers gather: depthwise 3x3 on Intel, 7.7 against 41 GF/s); padded: the
## window may leave the image and is masked (NCHW on CPUs gets the padding written into x instead, pad.mako:
## lanes are pixels there, and a clamped address per lane is a gather). Indices are computed whole, with the
## lane's term added last: Intel's vectoriser gathers from a pointer that was offset by the lane first.
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
        const index_t g = 0;
% elif kkg == 1:
        const index_t g = k;
% else:
        const index_t g = k / ${kkg};
% endif
        ${ACC} acc = (${ACC})0;
        #pragma unroll
        for (index_t r = 0; r < ${kr}; ++r) {
% if padded:
            // no branches: the padding reads a valid address and counts it zero (vectorisers keep lanes together)
            const index_t ih_raw = oh * sh - ph + r * dh;
            const int row_in = ih_raw >= 0 && ih_raw < H;
            const index_t ih = row_in ? ih_raw : 0;
% else:
            const index_t ih = oh * ${ksh} + r * ${kdh};
% endif
            #pragma unroll
            for (index_t s = 0; s < ${ks}; ++s) {
% if padded:
                const index_t iw_raw = ow * sw - pw + s * dw;
                const int inside = row_in && iw_raw >= 0 && iw_raw < W;
                const index_t iw = inside ? iw_raw : 0;
                const ${ACC} mask = inside ? (${ACC})1 : (${ACC})0;
% else:
                // no padding (or padding already written into x): every window lies inside the image
                const index_t iw = ow * ${ksw} + s * ${kdw};
% endif
                const index_t wo = (r * ${ks} + s) * ${kcg} * K;
                #pragma unroll
                for (index_t c = 0; c < ${kcg}; ++c) {
% if in_nchw:
                    const index_t xo = ((n * C + g * ${kcg} + c) * H + ih) * W + iw;
% else:
                    const index_t xo = ((n * H + ih) * W + iw) * C + g * ${kcg} + c;
% endif
                    acc = FMA((${ACC})${load("x", "xo")}${" * mask" if padded else ""}, (${ACC})${load("w", "wo + c * K + k")}, acc);
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
