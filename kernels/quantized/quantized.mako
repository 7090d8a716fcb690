## Quantized layers around the integer GEMM (kernels/gemm/gemm_int.mako): the unfolding of a convolution's
## windows into rows (im2col), row sums for zero-point corrections, and the epilogue that turns the raw
## int32 products into int32, float32 or requantized 8-bit outputs with PyTorch's arithmetic.
##
## Defines: dtype (the 8-bit input's), out_dtype (int32, float32, uint8 or int8), x_sums (whether the
## epilogue subtracts weight zero points times the input's row sums).
<%
    T = ctype(dtype)
    OUT = ctype(out_dtype)
    mode = "int" if OUT == "int" else "float" if OUT == "float" else "quantized"
%>
<%def name="im2col()">
## cols (N*P*Q, C*R*S) row-major: row n*P*Q + p*Q + q holds the window of output pixel (p, q) of image n,
## in the order of a (K, C, R, S) weight's rows; padding reads as the input's zero point (real 0)
KERNEL void im2col(GLOBAL_MEM ${T}* RESTRICT cols, GLOBAL_MEM const ${T}* RESTRICT x,
                   const index_t C, const index_t H, const index_t W, const index_t R, const index_t S,
                   const index_t P, const index_t Q, const index_t stride_h, const index_t stride_w,
                   const index_t pad_h, const index_t pad_w, const index_t dil_h, const index_t dil_w,
                   const index_t rows, const int zero_point)
{
    const index_t col = GLOBAL_ID(0), row = GLOBAL_ID(1);
    const index_t crs = C * R * S;
    if (col < crs && row < rows) {
        const index_t s = col % S, r = (col / S) % R, c = col / (R * S);
        const index_t q = row % Q, p = (row / Q) % P, n = row / (P * Q);
        const index_t h = p * stride_h - pad_h + r * dil_h, w = q * stride_w - pad_w + s * dil_w;
        const int inside = h >= 0 && h < H && w >= 0 && w < W;
        cols[row * crs + col] = inside ? x[((n * C + c) * H + h) * W + w] : (${T})zero_point;
    }
}
</%def>
<%def name="row_sums()">
## sums[i] = the sum of row i of the (rows, K) matrix x, in int32 (exact: |sum| < 2**31 for K < 2**23)
KERNEL void row_sums(GLOBAL_MEM int* RESTRICT sums, GLOBAL_MEM const ${T}* RESTRICT x, const index_t rows,
                     const index_t K)
{
    const index_t i = GLOBAL_ID(0);
    if (i < rows) {
        int s = 0;
        for (index_t k = 0; k < K; ++k)
            s += (int)x[i * K + k];
        sums[i] = s;
    }
}
</%def>
<%def name="epilogue()">
## out[i, j] from acc[i, j] (rows M, columns N): acc - zx * w_sums[j] (- zw[j] * x_sums[i] + K zx zw[j]) is
## sum_k (x - zx)(w - zw[j]) exactly (in wrapping 32-bit arithmetic), then
##   int32:     that sum
##   float32:   sum * scale[j] + offset[j]                     (scale = sx * sw[j], offset = bias)
##   quantized: clamp(rint((sum + offset[j]) * scale[j]) + zy)  (offset = bias / (sx sw[j]),
##              scale = sx sw[j] / sy, both rounded to float32 on the host as PyTorch's kernels do)
## pq > 0 writes NCHW: row i is pixel i % pq of image i / pq, column j its channel
KERNEL void epilogue(GLOBAL_MEM ${OUT}* RESTRICT out, GLOBAL_MEM const int* RESTRICT acc,
                     GLOBAL_MEM const int* RESTRICT w_sums, GLOBAL_MEM const int* RESTRICT w_zero,
                     GLOBAL_MEM const int* RESTRICT x_sums, GLOBAL_MEM const float* RESTRICT scale,
                     GLOBAL_MEM const float* RESTRICT offset, const int x_zero, const int K,
                     const int out_zero, const int qmin, const int qmax,
                     const index_t M, const index_t N, const index_t pq)
{
    const index_t j = GLOBAL_ID(0), i = GLOBAL_ID(1);
    if (i < M && j < N) {
        uint sum = (uint)acc[i * N + j] - (uint)x_zero * (uint)w_sums[j];
% if x_sums:
        sum = sum - (uint)w_zero[j] * (uint)x_sums[i] + (uint)K * (uint)x_zero * (uint)w_zero[j];
% endif
        const index_t at = pq > 0 ? ((i / pq) * N + j) * pq + i % pq : i * N + j;
% if mode == "int":
        out[at] = (int)sum;
% elif mode == "float":
        const float product = (float)(int)sum * scale[j];
        out[at] = product + offset[j];
% else:
        const float v = ((float)(int)sum + offset[j]) * scale[j];
        const float q = FMIN(FMAX(rint(v) + (float)out_zero, (float)qmin), (float)qmax);
        out[at] = (${OUT})(int)q;
% endif
    }
}
</%def>
${im2col()}
${row_sums()}
${epilogue()}
