## Batched GEMM: C = alpha * op(A) @ op(B) + beta * C, row-major, one template for every device.
##
## A work-group (block) computes a TM x TN tile of C; each work-item a WM x WN block of it, held in
## registers. Work-item (tx, ty) owns columns tx + j*TX and rows ty + i*TY of the tile, so neighbouring
## work-items touch neighbouring columns: coalesced on GPUs, one SIMD vector on CPUs.
##
## Two ways to feed the registers, chosen per device by the tuning table:
##   local_tiles=True   TK-deep slices of A and B are staged in local (shared) memory (GPUs);
##   local_tiles=False  work-items read A and B straight from global memory through the caches (CPUs,
##                      whose "local memory" is ordinary cache and whose barriers are costly).
##
## Defines: dtype, trans_a, trans_b, local_tiles, tm, tn, tk, wm, wn.
<%
    T = ctype(dtype)
    half = T == "half_t"
    ACC = "double" if T == "double" else "float"   # float16 accumulates in float32
    TX, TY = tn // wn, tm // wm
    WG = TX * TY

    def load(ptr, idx):
        return f"LOAD_HALF({ptr}, {idx})" if half else f"{ptr}[{idx}]"

    def a_index(m, k):
        return f"({k}) * lda + ({m})" if trans_a else f"({m}) * lda + ({k})"

    def b_index(k, n):
        return f"({n}) * ldb + ({k})" if trans_b else f"({k}) * ldb + ({n})"
%>
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
    const index_t row0 = GROUP_ID(1) * ${tm};
    const index_t col0 = GROUP_ID(0) * ${tn};

    ${ACC} acc[${wm}][${wn}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j)
            acc[i][j] = (${ACC})0;
    }

% if local_tiles:
    LOCAL_MEM ${ACC} As[${tk}][${tm}];
    LOCAL_MEM ${ACC} Bs[${tk}][${tn}];
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
            As[kk][mm] = (gm < M && gk < K) ? (${ACC})${load("A", a_index("gm", "gk"))} : (${ACC})0;
        }
        #pragma unroll
        for (index_t idx = lid; idx < ${tn * tk}; idx += ${WG}) {
% if trans_b:
            const index_t kk = idx % ${tk}, nn = idx / ${tk};
% else:
            const index_t nn = idx % ${tn}, kk = idx / ${tn};
% endif
            const index_t gn = col0 + nn, gk = k0 + kk;
            Bs[kk][nn] = (gn < N && gk < K) ? (${ACC})${load("B", b_index("gk", "gn"))} : (${ACC})0;
        }
        LOCAL_BARRIER;
        #pragma unroll
        for (index_t kk = 0; kk < ${tk}; ++kk) {
            ${ACC} a[${wm}], b[${wn}];
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i)
                a[i] = As[kk][ty + i * ${TY}];
            #pragma unroll
            for (index_t j = 0; j < ${wn}; ++j)
                b[j] = Bs[kk][tx + j * ${TX}];
            #pragma unroll
            for (index_t i = 0; i < ${wm}; ++i) {
                #pragma unroll
                for (index_t j = 0; j < ${wn}; ++j)
                    acc[i][j] = FMA(a[i], b[j], acc[i][j]);
            }
        }
        LOCAL_BARRIER;
    }
% else:
    // Rows and columns past the edge read a clamped (valid) address; their results are never stored.
    index_t rows[${wm}], cols[${wn}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i)
        rows[i] = MIN(row0 + ty + i * ${TY}, M - 1);
    #pragma unroll
    for (index_t j = 0; j < ${wn}; ++j)
        cols[j] = MIN(col0 + tx + j * ${TX}, N - 1);
    for (index_t k = 0; k < K; ++k) {
        ${ACC} a[${wm}], b[${wn}];
        #pragma unroll
        for (index_t i = 0; i < ${wm}; ++i)
            a[i] = (${ACC})${load("A", a_index("rows[i]", "k"))};
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j)
            b[j] = (${ACC})${load("B", b_index("k", "cols[j]"))};
        #pragma unroll
        for (index_t i = 0; i < ${wm}; ++i) {
            #pragma unroll
            for (index_t j = 0; j < ${wn}; ++j)
                acc[i][j] = FMA(a[i], b[j], acc[i][j]);
        }
    }
% endif

    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ty + i * ${TY};
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j) {
            const index_t col = col0 + tx + j * ${TX};
            if (row < M && col < N) {
                const index_t at = row * ldc + col;
                ${ACC} value = alpha * acc[i][j];
                if (beta != (${ACC})0)  // beta = 0 never reads C, which may hold garbage or NaN
                    value = FMA(beta, (${ACC})${load("C", "at")}, value);
% if half:
                STORE_HALF(C, at, value);
% else:
                C[at] = value;
% endif
            }
        }
    }
}
