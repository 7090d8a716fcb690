## Input with its padding written out as zeros, for CPUs: the convolution kernels then read windows
## that never leave the image, with no masks and, in the direct kernel, no clamped addresses (which CPU
## vectorisers turn into gathers). Measured on the Intel CPU runtime: the implicit-GEMM kernel on N8 C64
## 56x56 K64 3x3 206 against 164 GF/s; docs/benchmarks.md.
## in: x, (N, H, W, C), or with in_nchw (N, C, H, W); out: (N, Hp, Wp, C), or with out_nchw (N, C, Hp, Wp).
## Neighbouring work-items write neighbouring elements, one division per work-item:
##   NHWC out: work-item (c, wp, n * Hp + hp), or with row_loop (c, 0, n * Hp + hp) walking the row's
##             pixels (for runtimes that run work-items one by one: PoCL);
##   NCHW out: work-item (wp, hp, n * C + c).
## The layouts are compile-time, so that CPU vectorisers see unit strides (with strides passed as
## arguments, Intel's runtime gathers every load: 1.9 against 0.45 ms for 3.2 M floats, NCHW to NCHW).
## A copy needs no arithmetic: float16 moves as the 16-bit integer of the same bits.
## Defines: dtype, in_nchw, out_nchw, row_loop.
<% T = "unsigned short" if ctype(dtype) == "half_t" else ctype(dtype) %>
KERNEL void pad(
    GLOBAL_MEM ${T}* RESTRICT out,
    GLOBAL_MEM const ${T}* RESTRICT in,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t Hp, const index_t Wp, const index_t pt, const index_t pl)
{
% if out_nchw:
    const index_t wp = GLOBAL_ID(0);
    const index_t hp = GLOBAL_ID(1);
    const index_t nc = GLOBAL_ID(2);
    if (wp < Wp && hp < Hp && nc < N * C) {
        const index_t n = nc / C, c = nc % C, h = hp - pt, w = wp - pl;
        const index_t at = (nc * Hp + hp) * Wp + wp;
% else:
    const index_t c = GLOBAL_ID(0);
    const index_t nh = GLOBAL_ID(2);
% if row_loop:
    if (c < C && nh < N * Hp) {
        const index_t n = nh / Hp, h = nh % Hp - pt;
        for (index_t wp = 0; wp < Wp; ++wp) {
            const index_t w = wp - pl;
            const index_t at = (nh * Wp + wp) * C + c;
% else:
    const index_t wp = GLOBAL_ID(1);
    if (c < C && wp < Wp && nh < N * Hp) {
        const index_t n = nh / Hp, h = nh % Hp - pt, w = wp - pl;
        const index_t at = (nh * Wp + wp) * C + c;
% endif
% endif
        const int inside = h >= 0 && h < H && w >= 0 && w < W;
% if in_nchw:
        const index_t from = ((n * C + c) * H + h) * W + w;
% else:
        const index_t from = ((n * H + h) * W + w) * C + c;
% endif
        out[at] = inside ? in[from] : (${T})0;
% if row_loop and not out_nchw:
        }
% endif
    }
}
