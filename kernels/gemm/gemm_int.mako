## Integer GEMM: C = alpha * op(A) @ B + beta * C on int8/uint8 operands, exact in 32-bit integers.
##
## Every product and sum is an integer operation (no float path), accumulated in unsigned 32-bit
## lanes so that a sum past 2**31 wraps as numpy's int32 does instead of being undefined; C holds the
## bits as int32. A work-group computes a TM x TN tile of C, a work-item WM rows of it:
##   vw > 1  WN contiguous columns as WN/VW vectors of VW lanes: B's bytes are loaded as vectors and
##           widened (VLOAD_WIDEN), A's byte is splat; CPU compilers turn the 32-bit multiply of two
##           sign-extended bytes into the 16-bit multiply-add (x86 pmaddwd), twice as many lanes as FMA
##   vw = 1  WN columns TX apart (neighbouring work-items read neighbouring bytes: coalesced on GPUs)
## kc > 0 adds a barrier every kc steps of K, so that CPU runtimes that run a work-group's work-items
## one after another walk K in cache-sized blocks. B is always (K, N) here: the driver transposes a
## (N, K) operand first (``transpose`` below); A may be (M, K) or, with trans_a, (K, M).
##
## Defines: part ("gemm" or "transpose": each program holds one kernel), dtype_a, dtype_b (int8 or uint8),
## trans_a, tm, tn, wm, wn, vw, kc.
<%
    TA, TB = ctype(dtype_a), ctype(dtype_b)
    TX, TY = tn // wn, tm // wm
    NV = wn // vw
    signed_a = TA == "char"

    def a_index(m, k):
        return f"({k}) * lda + ({m})" if trans_a else f"({m}) * lda + ({k})"

    def col_of(j):
        return f"tx * {wn} + {j}" if vw > 1 else f"tx + {j} * {TX}"

    def row_of(i):
        return f"ty + {i} * {TY}"
%>
<%def name="k_loop_open()">
% if kc:
        for (index_t k0 = 0; k0 < K; k0 += ${kc}) {
        const index_t k_end = MIN(k0 + ${kc}, K);
        for (index_t k = k0; k < k_end; ++k) {
% else:
        for (index_t k = 0; k < K; ++k) {
% endif
</%def>
<%def name="k_loop_close()">
        }
% if kc:
        // every work-item of the group reaches this barrier: the branches around it are uniform per group
        LOCAL_BARRIER;
        }
% endif
</%def>
<%def name="store(row, col, value)">
            if (${row} < M && ${col} < N && ${row} >= own_row && ${col} >= own_col) {
                const index_t at = ${row} * ldc + ${col};
                uint out = (uint)alpha * (${value});
                if (beta != 0)  // beta = 0 never reads C
                    out += (uint)beta * (uint)C[at];
                C[at] = (int)out;
            }
</%def>
<%def name="direct_scalar(row, col)">
<% unroll = "#pragma unroll" if vw == 1 else "" %>
    uint acc[${wm}][${wn}];
    ${unroll}
    for (index_t i = 0; i < ${wm}; ++i) {
        ${unroll}
        for (index_t j = 0; j < ${wn}; ++j)
            acc[i][j] = 0u;
    }
    ${k_loop_open()}
            uint a[${wm}], b[${wn}];
            ${unroll}
            for (index_t i = 0; i < ${wm}; ++i)
                a[i] = (uint)(int)A[${a_index(row, "k")}];
            ${unroll}
            for (index_t j = 0; j < ${wn}; ++j)
                b[j] = (uint)(int)B[k * ldb + ${col}];
            ${unroll}
            for (index_t i = 0; i < ${wm}; ++i) {
                ${unroll}
                for (index_t j = 0; j < ${wn}; ++j)
                    acc[i][j] += a[i] * b[j];
            }
    ${k_loop_close()}
    ${unroll}
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ${row_of("i")};
        ${unroll}
        for (index_t j = 0; j < ${wn}; ++j) {
            const index_t col = col0 + ${col_of("j")};
            ${store("row", "col", "acc[i][j]")}
        }
    }
</%def>
<%def name="direct_vector()">
    VEC(uint, ${vw}) acc[${wm}][${NV}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        #pragma unroll
        for (index_t v = 0; v < ${NV}; ++v)
            acc[i][v] = VSPLAT(uint, ${vw}, 0u);
    }
    const index_t colv = col0 + tx * ${wn};
% if signed_a:
    // int8 A runs as A + 128 (0..255), and 128 times B's column sums come off at the end: a multiply
    // whose one side is known non-negative and under 2**15 is one x86 pmaddwd instead of a pmulld
    VEC(uint, ${vw}) bsum[${NV}];
    #pragma unroll
    for (index_t v = 0; v < ${NV}; ++v)
        bsum[v] = VSPLAT(uint, ${vw}, 0u);
% endif
    ${k_loop_open()}
            VEC(uint, ${vw}) b[${NV}];
            #pragma unroll
            for (index_t v = 0; v < ${NV}; ++v)
                b[v] = VLOAD_WIDEN(uint, ${vw}, B, k * ldb + colv + v * ${vw});
% if signed_a:
            #pragma unroll
            for (index_t v = 0; v < ${NV}; ++v)
                bsum[v] += b[v];
% endif
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i) {
% if signed_a:
                // a + 128 as a byte with its top bit flipped: a value the compiler knows is 0..255
                const uint a_biased = (uint)(unsigned char)((unsigned char)A[${a_index(f"row0 + {row_of('i')}", "k")}] ^ 0x80u);
                const VEC(uint, ${vw}) a = VSPLAT(uint, ${vw}, a_biased);
% else:
                const VEC(uint, ${vw}) a = VSPLAT(uint, ${vw}, (uint)A[${a_index(f"row0 + {row_of('i')}", "k")}]);
% endif
                #pragma unroll
                for (index_t v = 0; v < ${NV}; ++v)
                    acc[i][v] += a * b[v];
            }
    ${k_loop_close()}
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ${row_of("i")};
        #pragma unroll
        for (index_t v = 0; v < ${NV}; ++v) {
            #pragma unroll
            for (index_t e = 0; e < ${vw}; ++e) {
                const index_t col = colv + v * ${vw} + e;
% if signed_a:
                ${store("row", "col", "(VGET(acc[i][v], e) - 128u * VGET(bsum[v], e))")}
% else:
                ${store("row", "col", "VGET(acc[i][v], e)")}
% endif
            }
        }
    }
</%def>
<%def name="gemm_int()">
KERNEL void gemm_int(
    GLOBAL_MEM int* RESTRICT C,
    GLOBAL_MEM const ${TA}* RESTRICT A,
    GLOBAL_MEM const ${TB}* RESTRICT B,
    const index_t M, const index_t N, const index_t K,
    const int alpha, const int beta,
    const index_t lda, const index_t ldb, const index_t ldc,
    const index_t stride_a, const index_t stride_b, const index_t stride_c)
{
    const index_t tx = LOCAL_ID(0);
    const index_t ty = LOCAL_ID(1);
    const index_t batch = GROUP_ID(2);
    A += batch * stride_a;
    B += batch * stride_b;
    C += batch * stride_c;
    // the rows and columns of C this work-group owns (and alone stores)
    const index_t own_row = GROUP_ID(1) * ${tm};
    const index_t own_col = GROUP_ID(0) * ${tn};
    // an edge tile of a matrix at least one tile large is computed as the whole tile that ends at the
    // matrix's edge, on the fast path, and stores only what it owns
    const int shifted = M >= ${tm} && N >= ${tn};
    const index_t row0 = shifted ? MIN(own_row, M - ${tm}) : own_row;
    const index_t col0 = shifted ? MIN(own_col, N - ${tn}) : own_col;
    if (row0 + ${tm} <= M && col0 + ${tn} <= N) {
% if vw > 1:
        ${direct_vector()}
% else:
        ${direct_scalar("row0 + " + row_of("i"), "col0 + " + col_of("j"))}
% endif
    } else {
        // a matrix smaller than a tile: rows and columns past the edge read a clamped (valid) address
        // and are never stored
        ${direct_scalar("MIN(row0 + %s, M - 1)" % row_of("i"), "MIN(col0 + %s, N - 1)" % col_of("j"))}
    }
}
</%def>
<%def name="transpose()">
## out (batch, cols, rows) = the transposes of in's (rows, cols) matrices, `stride` elements apart
KERNEL void transpose(GLOBAL_MEM ${TB}* RESTRICT out, GLOBAL_MEM const ${TB}* RESTRICT in,
                      const index_t rows, const index_t cols, const index_t stride)
{
    const index_t r = GLOBAL_ID(0), c = GLOBAL_ID(1), batch = GROUP_ID(2);
    if (r < rows && c < cols)
        out[batch * rows * cols + c * rows + r] = in[batch * stride + r * cols + c];
}
</%def>
% if part == "gemm":
${gemm_int()}
% else:
${transpose()}
% endif
