## The im2col matrix of a padded NCHW input, for layers with few output pixels (7x7 and 14x14 images):
## col[n][(c * R + r) * S + s][p * Q + q] = x[n][c][p * sh + r * dh][q * sw + s * dw], so that the layer is
## the batched product y[n] (K x P*Q) = w (K x C*R*S) @ col[n] (C*R*S x P*Q), run by the GEMM. With few
## pixels the matrix is small (N8 C512 7x7 3x3: 7 MB), and the GEMM's kernels then work on whole matrices
## where the implicit GEMM would have a few dozen rows per work-group.
##
## One work-item per row of col (n, c, r, s): P runs of Q contiguous writes, reads with stride sw.
## The input holds its padding (pad.mako), so no read is masked. float16 moves as its 16-bit integer.
## Defines: dtype, kr, ks, ksh, ksw, kdh, kdw.
<% P_ = ctype(dtype); T = "unsigned short" if storage_suffix(P_) else P_ %>
KERNEL REQD_WORK_GROUP_SIZE(1, 1, 1)
void im2col(
    GLOBAL_MEM ${P_}* RESTRICT col_,
    GLOBAL_MEM const ${P_}* RESTRICT x_,
    const index_t C, const index_t Hp, const index_t Wp, const index_t P, const index_t Q)
{
    GLOBAL_MEM ${T}* col = (GLOBAL_MEM ${T}*)col_;
    GLOBAL_MEM const ${T}* x = (GLOBAL_MEM const ${T}*)x_;
    // work-item (n * C + c) * R * S + r * S + s
    const index_t row = GLOBAL_ID(0);
    const index_t nc = row / ${kr * ks}, rs = row % ${kr * ks};
    const index_t r = rs / ${ks}, s = rs % ${ks};
    GLOBAL_MEM const ${T}* src = x + nc * Hp * Wp + r * ${kdh} * Wp + s * ${kdw};
    GLOBAL_MEM ${T}* dst = col + row * P * Q;
    for (index_t p = 0; p < P; ++p) {
        GLOBAL_MEM const ${T}* in = src + p * ${ksh} * Wp;
        GLOBAL_MEM ${T}* out = dst + p * Q;
        for (index_t q = 0; q < Q; ++q)
            out[q] = in[q * ${ksw}];
    }
}
