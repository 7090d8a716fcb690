## Direct 2-D convolution, NHWC, one output element per work-item: for depthwise layers and small
## channel counts, where an implicit GEMM has too little to reduce over.
## Work-item (k, ow, n * P + oh). Weights are (G, R, S, Cg, Kg). Defines: dtype, has_bias, out_nchw,
## and the filter's shape (kr, ks, kcg: R, S and Cg as constants, so the compiler unrolls the window)
## and kkg (Kg) and kgroups (groups) as constants: with one group, or one channel in and out per group,
## a vectoriser sees that neighbouring work-items read the same input, or neighbouring inputs.
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
    const index_t k = GLOBAL_ID(0);
    const index_t ow = GLOBAL_ID(1);
    const index_t nph = GLOBAL_ID(2);
    if (k < K && ow < Q && nph < N * P) {
        const index_t n = nph / P, oh = nph % P;
% if kgroups == 1:
        const index_t g = 0, kk = k;
        GLOBAL_MEM const ${T}* xg = x + n * H * W * C;
% elif kcg == 1 and kkg == 1:
        const index_t g = k, kk = 0;
        GLOBAL_MEM const ${T}* xg = x + n * H * W * C + k;
% else:
        const index_t g = k / ${kkg}, kk = k % ${kkg};
        GLOBAL_MEM const ${T}* xg = x + n * H * W * C + g * ${kcg};
% endif
        GLOBAL_MEM const ${T}* wg = w + g * ${kr * ks * kcg} * Kg + kk;
        ${ACC} acc = (${ACC})0;
        #pragma unroll
        for (index_t r = 0; r < ${kr}; ++r) {
            const index_t ih = oh * sh - ph + r * dh;
            if (ih < 0 || ih >= H)
                continue;
            #pragma unroll
            for (index_t s = 0; s < ${ks}; ++s) {
                const index_t iw = ow * sw - pw + s * dw;
                if (iw < 0 || iw >= W)
                    continue;
                const index_t xo = (ih * W + iw) * C;
                const index_t wo = (r * ${ks} + s) * ${kcg} * Kg;
                #pragma unroll
                for (index_t c = 0; c < ${kcg}; ++c)
                    acc = FMA((${ACC})${load("xg", "xo + c")}, (${ACC})${load("wg", "wo + c * Kg")}, acc);
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
