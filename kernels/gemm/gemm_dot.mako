## Batched GEMM with few columns (N <= cols per launch row of work-items): C = alpha * A @ B + beta * C,
## A (M x K) row-major, B given as its transpose Bt (N x K) row-major, C at any row and column stride.
##
## The shape of x @ W.T with one to a few rows (a matrix-vector product, or a few): its cost is reading
## A once, so each work-item walks R rows of A and the (at most 4) rows of Bt along K in vectors of VW,
## keeps R x cols vector accumulators and sums their lanes at the end. Bt is a few KiB and stays in cache;
## A streams from memory with unit stride. The tile-based kernels would compute 16 columns for each one
## here (the panel kernel's smallest panel).
##
## Work-item (i, j, batch): columns cols*j .. cols*j + cols - 1 of C, rows R*i .. R*i + R - 1 and every R*G0-th
## block of R rows after them (G0 the global size along dimension 0).
## Defines: dtype, vw, rows (R), cols (columns per work-item: 4, or 1 for a matrix-vector product, whose
## 4 columns would be 4 copies of one).
<%
    T = ctype(dtype)
    half = storage_suffix(T)   # HALF (float16) or BF16 (bfloat16): storage only, read and written through their words
    ACC = "double" if T == "double" else "float"
    V = f"VEC({ACC}, {vw})"
    NC = cols

    def load(ptr, idx):
        return f"LOAD_{half}({ptr}, {idx})" if half else f"{ptr}[{idx}]"

    def vload(ptr, idx):
        return f"VLOAD_{half}({vw}, {ptr}, {idx})" if half else f"VLOAD({vw}, {ptr}, {idx})"
%>
KERNEL void gemm_dot(
    GLOBAL_MEM ${T}* RESTRICT C,
    GLOBAL_MEM const ${T}* RESTRICT A,
    GLOBAL_MEM const ${T}* RESTRICT Bt,
    const index_t M, const index_t N, const index_t K,
    const ${ACC} alpha, const ${ACC} beta,
    const index_t lda, const index_t ldb, const index_t c_rs, const index_t c_cs,
    const index_t stride_a, const index_t stride_b, const index_t stride_c)
{
    const index_t col0 = GLOBAL_ID(1) * ${NC};
    const index_t batch = GLOBAL_ID(2);
    if (col0 >= N)
        return;
    A += batch * stride_a;
    Bt += batch * stride_b;
    C += batch * stride_c;
    for (index_t row0 = GLOBAL_ID(0) * ${rows}; row0 < M; row0 += GLOBAL_SIZE(0) * ${rows}) {
    // rows past M and columns past N read the last ones (never stored)
% for r in range(rows):
    GLOBAL_MEM const ${T}* RESTRICT a${r} = A + MIN(row0 + ${r}, M - 1) * lda;
% endfor
% for j in range(NC):
    GLOBAL_MEM const ${T}* RESTRICT b${j} = Bt + MIN(col0 + ${j}, N - 1) * ldb;
% endfor
% for r in range(rows):
% for j in range(NC):
    ${V} acc${r}_${j} = VSPLAT(${ACC}, ${vw}, 0);
% endfor
% endfor
    const index_t kv = K / ${vw} * ${vw};
    for (index_t k = 0; k < kv; k += ${vw}) {
% for j in range(NC):
        const ${V} vb${j} = ${vload(f"b{j}", "k")};
% endfor
% for r in range(rows):
        const ${V} va${r} = ${vload(f"a{r}", "k")};
% for j in range(NC):
        acc${r}_${j} = VFMA(va${r}, vb${j}, acc${r}_${j});
% endfor
% endfor
    }
% for r in range(rows):
% for j in range(NC):
    {
        ${ACC} sum = VSUM(acc${r}_${j});
        for (index_t k = kv; k < K; ++k)
            sum = FMA((${ACC})${load(f"a{r}", "k")}, (${ACC})${load(f"b{j}", "k")}, sum);
        if (row0 + ${r} < M && col0 + ${j} < N) {
            const index_t at = (row0 + ${r}) * c_rs + (col0 + ${j}) * c_cs;
            ${ACC} out = alpha * sum;
            if (beta != (${ACC})0)  // beta = 0 never reads C
                out = FMA(beta, (${ACC})${load("C", "at")}, out);
% if half:
            STORE_${half}(C, at, out);
% else:
            C[at] = out;
% endif
        }
    }
% endfor
% endfor
    }
}
