## Direct 2-D convolution, NHWC, one output element per work-item: for depthwise layers and small
## channel counts, where an implicit GEMM has too little to reduce over.
## Work-item (k, ow, n * P + oh). Weights are (G, R, S, Cg, Kg). Defines: dtype, has_bias.
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
        const index_t g = k / Kg, kk = k % Kg;
        GLOBAL_MEM const ${T}* xg = x + n * H * W * C + g * Cg;
        GLOBAL_MEM const ${T}* wg = w + g * R * S * Cg * Kg + kk;
        ${ACC} acc = (${ACC})0;
        for (index_t r = 0; r < R; ++r) {
            const index_t ih = oh * sh - ph + r * dh;
            if (ih < 0 || ih >= H)
                continue;
            for (index_t s = 0; s < S; ++s) {
                const index_t iw = ow * sw - pw + s * dw;
                if (iw < 0 || iw >= W)
                    continue;
                const index_t xo = (ih * W + iw) * C;
                const index_t wo = (r * S + s) * Cg * Kg;
                for (index_t c = 0; c < Cg; ++c)
                    acc = FMA((${ACC})${load("xg", "xo + c")}, (${ACC})${load("wg", "wo + c * Kg")}, acc);
            }
        }
% if has_bias:
        acc += (${ACC})${load("bias", "k")};
% endif
        const index_t at = ((n * P + oh) * Q + ow) * K + k;
% if half:
        STORE_HALF(y, at, acc);
% else:
        y[at] = acc;
% endif
    }
}
