## Batched GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major, one template for every device.
##
## A work-group (block) computes a TM x TN tile of C; each work-item a WM x WN block of it, held in
## registers. Work-item (ty) owns rows ty + i*TY of the tile. Its columns are either strided
## (tx + j*TX: neighbouring work-items touch neighbouring columns, coalesced on GPUs and one SIMD
## vector on CPU runtimes that vectorise across work-items) or contiguous (tx*WN + j: one work-item's
## columns side by side, loaded as short vectors of VW elements, for compilers that vectorise within
## a work-item).
##
## Three ways to feed the registers, chosen per device by the tuning table (tuning.py):
##   local_tiles=True   TK-deep slices of A and B are staged in local (shared) memory (GPUs);
##   local_tiles=False  work-items read A and B straight from global memory through the caches (CPUs,
##                      whose "local memory" is ordinary cache), with VW-wide vector loads of B when vw > 1;
##                      kc > 0 adds a barrier every kc steps of K, so that a CPU runtime that runs a
##                      work-group's work-items one after another walks K in cache-sized blocks.
##
## Defines: dtype, trans_a, trans_b, local_tiles, tm, tn, tk, wm, wn, kc, contiguous_cols, vw; acc16 (optional,
## float16 only: sums in half precision, see below; vw is then ignored).
<%
    T = ctype(dtype)
    half = storage_suffix(T)   # HALF (float16) or BF16 (bfloat16): storage only, read and written through their words
    ACC = "double" if T == "double" else "float"   # float16 and bfloat16 accumulate in float32
    # acc16 (float16 only, accumulate="float16"): products and sums in half precision (hfloat_t, the
    # prelude's word: half where the device computes in it, float elsewhere); alpha, beta and C in ACC
    acc16 = context.get("acc16", False)
    KACC = "hfloat_t" if acc16 else ACC
    TX, TY = tn // wn, tm // wm
    WG = TX * TY
    NV = wn // vw   # vectors per row of a work-item's block

    def load(ptr, idx):
        return f"LOAD_{half}({ptr}, {idx})" if half else f"{ptr}[{idx}]"

    def a_index(m, k):
        return f"({k}) * lda + ({m})" if trans_a else f"({m}) * lda + ({k})"

    def b_index(k, n):
        return f"({n}) * ldb + ({k})" if trans_b else f"({k}) * ldb + ({n})"

    def col_of(j):
        return f"tx * {wn} + {j}" if contiguous_cols else f"tx + {j} * {TX}"

    def row_of(i):
        return f"ty + {i} * {TY}"
%>
## ---- pieces -------------------------------------------------------------------------------------
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
        // every work-item of the group reaches this barrier: the branch around it is uniform per group
        LOCAL_BARRIER;
        }
% endif
</%def>
<%def name="scalar_acc()">
    ${KACC} acc[${wm}][${wn}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j)
            acc[i][j] = (${KACC})0;
    }
</%def>
<%def name="fma_block()">
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i) {
                #pragma unroll
                for (index_t j = 0; j < ${wn}; ++j)
                    acc[i][j] = FMA(a[i], b[j], acc[i][j]);
            }
</%def>
<%def name="store(row, col, value)">
            if (${row} < M && ${col} < N && ${row} >= own_row && ${col} >= own_col) {
                const index_t at = ${row} * ldc + ${col};
                ${ACC} out = alpha * (${ACC})(${value});
                if (beta != (${ACC})0)  // beta = 0 never reads C, which may hold garbage or NaN
                    out = FMA(beta, (${ACC})${load("C", "at")}, out);
% if half:
                STORE_${half}(C, at, out);
% else:
                C[at] = out;
% endif
            }
</%def>
<%def name="scalar_epilogue()">
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ${row_of("i")};
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j) {
            const index_t col = col0 + ${col_of("j")};
            ${store("row", "col", "acc[i][j]")}
        }
    }
</%def>
<%def name="direct_scalar(row, col)">
    ${scalar_acc()}
    ${k_loop_open()}
            ${KACC} a[${wm}], b[${wn}];
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i)
                a[i] = (${KACC})${load("A", a_index(row, "k"))};
            #pragma unroll
            for (index_t j = 0; j < ${wn}; ++j)
                b[j] = (${KACC})${load("B", b_index("k", col))};
            ${fma_block()}
    ${k_loop_close()}
    ${scalar_epilogue()}
</%def>
<%def name="direct_vector()">
    // one work-item: WM rows x NV vectors of VW contiguous columns
    VEC(${ACC}, ${vw}) acc[${wm}][${NV}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        #pragma unroll
        for (index_t v = 0; v < ${NV}; ++v)
            acc[i][v] = VSPLAT(${ACC}, ${vw}, 0);
    }
    const index_t colv = col0 + tx * ${wn};
    ${k_loop_open()}
            VEC(${ACC}, ${vw}) b[${NV}];
            #pragma unroll
            for (index_t v = 0; v < ${NV}; ++v)
                b[v] = VLOAD(${vw}, B, k * ldb + colv + v * ${vw});
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i) {
                const VEC(${ACC}, ${vw}) a = VSPLAT(${ACC}, ${vw}, A[${a_index(f"row0 + {row_of('i')}", "k")}]);
                #pragma unroll
                for (index_t v = 0; v < ${NV}; ++v)
                    acc[i][v] = VFMA(a, b[v], acc[i][v]);
            }
    ${k_loop_close()}
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ${row_of("i")};
        #pragma unroll
        for (index_t v = 0; v < ${NV}; ++v) {
            ${ACC} lanes[${vw}];
            VSTORE(${vw}, acc[i][v], lanes, 0);
            #pragma unroll
            for (index_t e = 0; e < ${vw}; ++e) {
                const index_t col = colv + v * ${vw} + e;
                ${store("row", "col", "lanes[e]")}
            }
        }
    }
</%def>
## ---- the kernel -----------------------------------------------------------------------------------
KERNEL void gemm(
    GLOBAL_MEM ${T}* RESTRICT C,
    GLOBAL_MEM const ${T}* RESTRICT A,
    GLOBAL_MEM const ${T}* RESTRICT B,
    const index_t M, const index_t N, const index_t K,
    const ${ACC} alpha, const ${ACC} beta,
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
% if local_tiles:
    const index_t row0 = own_row, col0 = own_col;
% else:
    // an edge tile of a matrix at least one tile large is computed as the whole tile that ends at the
    // matrix's edge, on the fast path (Intel CPU runtime: a clamped edge tile costs about 4 whole ones)
    const int shifted = M >= ${tm} && N >= ${tn};
    const index_t row0 = shifted ? MIN(own_row, M - ${tm}) : own_row;
    const index_t col0 = shifted ? MIN(own_col, N - ${tn}) : own_col;
% endif

% if local_tiles:
    ${scalar_acc()}
    LOCAL_MEM ${KACC} As[${tk}][${tm}];
    LOCAL_MEM ${KACC} Bs[${tk}][${tn}];
    const index_t lid = ty * ${TX} + tx;
    for (index_t k0 = 0; k0 < K; k0 += ${tk}) {
        // Stage the slices; the contiguous dimension of each matrix varies fastest, so reads coalesce.
        #pragma unroll
        for (index_t idx = lid; idx < ${tm * tk}; idx += ${WG}) {
% if trans_a:
            const index_t mm = idx % ${tm}, kk = idx / ${tm};
% else:
            const index_t kk = idx % ${tk}, mm = idx / ${tk};
% endif
            const index_t gm = row0 + mm, gk = k0 + kk;
            As[kk][mm] = (gm < M && gk < K) ? (${KACC})${load("A", a_index("gm", "gk"))} : (${KACC})0;
        }
        #pragma unroll
        for (index_t idx = lid; idx < ${tn * tk}; idx += ${WG}) {
% if trans_b:
            const index_t kk = idx % ${tk}, nn = idx / ${tk};
% else:
            const index_t nn = idx % ${tn}, kk = idx / ${tn};
% endif
            const index_t gn = col0 + nn, gk = k0 + kk;
            Bs[kk][nn] = (gn < N && gk < K) ? (${KACC})${load("B", b_index("gk", "gn"))} : (${KACC})0;
        }
        LOCAL_BARRIER;
        #pragma unroll
        for (index_t kk = 0; kk < ${tk}; ++kk) {
            ${KACC} a[${wm}], b[${wn}];
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i)
                a[i] = As[kk][${row_of("i")}];
            #pragma unroll
            for (index_t j = 0; j < ${wn}; ++j)
                b[j] = Bs[kk][${col_of("j")}];
            ${fma_block()}
        }
        LOCAL_BARRIER;
    }
    ${scalar_epilogue()}
% else:
    if (row0 + ${tm} <= M && col0 + ${tn} <= N) {
        // a whole tile: no clamping, so neighbouring addresses stay neighbours (vector loads)
% if vw > 1 and not acc16:
        ${direct_vector()}
% else:
        ${direct_scalar("row0 + " + row_of("i"), "col0 + " + col_of("j"))}
% endif
    } else {
        // an edge tile: rows and columns past the edge read a clamped (valid) address and are never stored
        ${direct_scalar("MIN(row0 + %s, M - 1)" % row_of("i"), "MIN(col0 + %s, N - 1)" % col_of("j"))}
    }
% endif
}
