## Input for the implicit GEMM on CPUs: x (NCHW or NHWC, by strides) to NHWC with the padding written
## out as zeros, so that the GEMM's window never leaves the image and needs no masks (Intel CPU runtime,
## N8 C64 56x56 K64 3x3: 206 against 164 GF/s; docs/benchmarks.md).
## out[n][hp][wp][c] = in[n * sn + (hp - pt) * sh + (wp - pl) * sw + c * sc], 0 outside the image.
## Work-item (c, wp, n * Hp + hp): neighbouring work-items write neighbouring elements, one division a row.
## A copy needs no arithmetic: float16 moves as the 16-bit integer of the same bits. Defines: dtype.
<% T = "unsigned short" if ctype(dtype) == "half_t" else ctype(dtype) %>
KERNEL void pad_nhwc(
    GLOBAL_MEM ${T}* RESTRICT out,
    GLOBAL_MEM const ${T}* RESTRICT in,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t Hp, const index_t Wp, const index_t pt, const index_t pl,
    const index_t sn, const index_t sh, const index_t sw, const index_t sc)
{
    const index_t c = GLOBAL_ID(0);
    const index_t wp = GLOBAL_ID(1);
    const index_t nh = GLOBAL_ID(2);
    if (c < C && wp < Wp && nh < N * Hp) {
        const index_t n = nh / Hp, h = nh % Hp - pt, w = wp - pl;
        const int inside = h >= 0 && h < H && w >= 0 && w < W;
        out[(nh * Wp + wp) * C + c] = inside ? in[n * sn + h * sh + w * sw + c * sc] : (${T})0;
    }
}
