## Batched GEMM for CPU runtimes: C = alpha * A @ B + beta * C with A (M x K) and B (K x N) row-major
## (the planner packs or swaps transposed operands first), C at any row and column stride.
##
## The layout of BLAS libraries on CPUs, in OpenCL terms. A work-group of WG work-items owns NC = WG * PW * NR
## columns of C and MC of its rows (mc, a launch argument); each work-item owns PW panels of NR = 2 * VW
## columns (two VW-wide vectors). K is walked in blocks of KC: for each block the group copies its KC x NC
## slice of B into local memory (ordinary cache on a CPU: the copy reads whole rows of B, which the
## hardware prefetches, and leaves each panel contiguous, free of the cache-set conflicts that a
## power-of-two row length gives a strided walk down B); then each work-item walks the MC rows, MR rows
## at a time, and runs its micro-kernel on each of its PW panels in turn: MR x 2 vector accumulators (12
## of AVX2's 16 registers for MR = 6), per step of k two vector loads of B and MR broadcasts of A, read
## along A's rows. C is so written PW * NR columns of a row at a time, in runs the hardware prefetches.
## A's MC x KC block stays in the core's L2 cache while every panel of the group uses it.
##
## float16 storage accumulates in float32, across K blocks too: in W (batch x M x N floats) when K > KC.
##
## tb (optional, False by default): B is given as its transpose, N x K row-major (``x @ W.T``: W as it lies), and
## the copy into local memory transposes it: each column's K run is read along its row of B^T, eight elements
## at a time, and written down its panel (an 8 x NR block of the panel, in L1, takes NR such runs). No
## separate pass over B through memory, and the copy is spread over the work-groups.
##
## Defines: dtype, vw (the accumulator's vector width), mr, wg, kc, pw (panels per work-item); tb. MC (a
## multiple of MR) is an argument; ldb is B's row length (N, or K with tb).
<%
    tb = context.get("tb", False)
    T = ctype(dtype)
    half = storage_suffix(T)   # HALF (float16) or BF16 (bfloat16): storage only, read and written through their words
    ACC = "double" if T == "double" else "float"   # float16 and bfloat16 accumulate in float32
    NR = 2 * vw
    NC = wg * pw * NR
    V = f"VEC({ACC}, {vw})"

    def load(ptr, idx):
        return f"LOAD_{half}({ptr}, {idx})" if half else f"{ptr}[{idx}]"

    def vload(ptr, idx):
        return f"VLOAD_{half}({vw}, {ptr}, {idx})" if half else f"VLOAD({vw}, {ptr}, {idx})"

    AK = 16  # float16/bfloat16: elements of A's rows converted at a time (16 ran 2-7% faster than 8 on
    # Intel's runtime, 5-19% on PoCL; OpenCL vectors end at 16)

    def vload_k(ptr, idx):
        return f"VLOAD_{half}({AK}, {ptr}, {idx})"

%>
KERNEL REQD_WORK_GROUP_SIZE(${wg}, 1, 1)
void gemm_panel(
    GLOBAL_MEM ${T}* RESTRICT C,
    GLOBAL_MEM const ${T}* RESTRICT A,
    GLOBAL_MEM const ${T}* RESTRICT B,
    const index_t M, const index_t N, const index_t K, const index_t mc,
    const ${ACC} alpha, const ${ACC} beta,
    const index_t lda, const index_t ldb, const index_t c_rs, const index_t c_cs,
    const index_t stride_a, const index_t stride_b, const index_t stride_c${", GLOBAL_MEM float* RESTRICT W" if half else ""})
{
    // the group's KC x NC slice of B, as WG * PW panels of KC x NR (KC or K rows, the fewer): sized at
    // launch (a static array this large is refused by GPU compilers, which check every variant offline)
    LOCAL_MEM_DYNAMIC(${ACC}, Bl);
    const index_t lid = LOCAL_ID(0);
    const index_t batch = GROUP_ID(2);
    A += batch * stride_a;
    B += batch * stride_b;
    C += batch * stride_c;
    const index_t c0 = GROUP_ID(0) * ${NC};
    const index_t col0 = c0 + lid * ${pw * NR};
    const index_t row0 = GROUP_ID(1) * mc;
    const index_t row_end = MIN(row0 + mc, M);
    const int whole = c0 + ${NC} <= N;
    // K = 0 still runs one (empty) block: C = beta * C
    const index_t blocks = K > 0 ? (K + ${kc - 1}) / ${kc} : 1;
    // rows of a panel in local memory: KC, or K when that is less (the launch sizes Bl by it)
    const index_t kcs = MAX(MIN((index_t)${kc}, K), (index_t)1);
    for (index_t kb = 0; kb < blocks; ++kb) {
        const index_t k0 = kb * ${kc};
        const index_t kl = MIN((index_t)${kc}, K - k0);
        LOCAL_BARRIER;  // the previous block's panels are used up
% if tb:
        // B^T's rows c0.. (one per column of C), K from k0: each work-item its panels in turn
        for (index_t p = lid; p < ${wg * pw}; p += ${wg}) {
            LOCAL_MEM_ARG ${ACC}* RESTRICT dst = Bl + p * kcs * ${NR};
            if (whole) {
                const index_t kl8 = kl / 8 * 8;
                for (index_t kk = 0; kk < kl8; kk += 8) {
                    #pragma unroll
                    for (index_t e = 0; e < ${NR}; ++e) {
                        GLOBAL_MEM const ${T}* RESTRICT src = B + (c0 + p * ${NR} + e) * ldb + k0 + kk;
                        #pragma unroll
                        for (index_t t = 0; t < 8; ++t)
                            dst[(kk + t) * ${NR} + e] = (${ACC})${load("src", "t")};
                    }
                }
                for (index_t kk = kl8; kk < kl; ++kk)
                    for (index_t e = 0; e < ${NR}; ++e)
                        dst[kk * ${NR} + e] = (${ACC})${load("B", f"(c0 + p * {NR} + e) * ldb + k0 + kk")};
            } else {
                // the last columns of C: zeros past N
                for (index_t e = 0; e < ${NR}; ++e) {
                    const index_t col = c0 + p * ${NR} + e;
                    for (index_t kk = 0; kk < kl; ++kk)
                        dst[kk * ${NR} + e] = col < N ? (${ACC})${load("B", "col * ldb + k0 + kk")} : (${ACC})0;
                }
            }
        }
% else:
        if (whole) {
            // whole rows of the slice, one row per work-item in turn, as vectors
            for (index_t kk = lid; kk < kl; kk += ${wg}) {
                const index_t src = (k0 + kk) * ldb + c0;
                #pragma unroll
                for (index_t p = 0; p < ${wg * pw}; ++p) {
                    VSTORE(${vw}, ${vload("B", f"src + p * {NR}")}, Bl, (p * kcs + kk) * ${NR});
                    VSTORE(${vw}, ${vload("B", f"src + p * {NR} + {vw}")}, Bl, (p * kcs + kk) * ${NR} + ${vw});
                }
            }
        } else {
            // the last columns of C: zeros past N (rows of the slice in turn, no division per element)
            for (index_t kk = lid; kk < kl; kk += ${wg}) {
                const index_t src = (k0 + kk) * ldb;
                for (index_t p = 0; p < ${wg * pw}; ++p) {
                    #pragma unroll
                    for (index_t e = 0; e < ${NR}; ++e) {
                        const index_t col = c0 + p * ${NR} + e;
                        Bl[(p * kcs + kk) * ${NR} + e] = col < N ? (${ACC})${load("B", "src + col")} : (${ACC})0;
                    }
                }
            }
        }
% endif
        LOCAL_BARRIER;
        // KC x NR panels of the slice: with PW = 1 one per work-item, walked down the group's rows; with
        // PW > 1 each work-item walks its PW panels along every MR rows
% if pw == 1:
        if (col0 < N) {
            LOCAL_MEM_ARG const ${ACC}* RESTRICT panel = Bl + lid * kcs * ${NR};
            const index_t colq = col0;
            for (index_t i0 = row0; i0 < row_end; i0 += ${mr}) {
% else:
        for (index_t i0 = row0; i0 < row_end; i0 += ${mr}) {
            for (index_t q = 0; q < ${pw}; ++q) {
                const index_t colq = col0 + q * ${NR};
                if (colq >= N)
                    break;
                LOCAL_MEM_ARG const ${ACC}* RESTRICT panel = Bl + (lid * ${pw} + q) * kcs * ${NR};
% endif
% for i in range(mr):
                ${V} acc${i}_0 = VSPLAT(${ACC}, ${vw}, 0), acc${i}_1 = VSPLAT(${ACC}, ${vw}, 0);
                // rows past M read the last row (never stored)
                GLOBAL_MEM const ${T}* RESTRICT a${i} = A + MIN(i0 + ${i}, M - 1) * lda + k0;
% endfor
                index_t k = 0;
% if half:
                // float16/bfloat16 A: AK elements of each row converted at once, as one vector, into a
                // private block the broadcasts then read (one conversion per element, never a scalar one)
                for (; k + ${AK} <= kl; k += ${AK}) {
                    ${ACC} ab[${mr * AK}];
% for i in range(mr):
                    VSTORE(${AK}, ${vload_k(f"a{i}", "k")}, ab, ${i * AK});
% endfor
                    #pragma unroll
                    for (index_t t = 0; t < ${AK}; ++t) {
                        const ${V} b0 = VLOAD(${vw}, panel, (k + t) * ${NR});
                        const ${V} b1 = VLOAD(${vw}, panel, (k + t) * ${NR} + ${vw});
% for i in range(mr):
                        const ${V} s${i} = VSPLAT(${ACC}, ${vw}, ab[${i * AK} + t]);
                        acc${i}_0 = VFMA(s${i}, b0, acc${i}_0);
                        acc${i}_1 = VFMA(s${i}, b1, acc${i}_1);
% endfor
                    }
                }
% endif
                for (; k < kl; ++k) {
                    const ${V} b0 = VLOAD(${vw}, panel, k * ${NR});
                    const ${V} b1 = VLOAD(${vw}, panel, k * ${NR} + ${vw});
% for i in range(mr):
                    const ${V} s${i} = VSPLAT(${ACC}, ${vw}, ${load(f"a{i}", "k")});
                    acc${i}_0 = VFMA(s${i}, b0, acc${i}_0);
                    acc${i}_1 = VFMA(s${i}, b1, acc${i}_1);
% endfor
                }
                // C = alpha * acc + beta * C on the first block (beta = 0 never reads C), C += alpha * acc after
% if half:
                // (float16 storage: the blocks before the last add up in W, in float32)
% endif
                ${ACC} lanes[${NR}];
% for i in range(mr):
                if (i0 + ${i} < row_end) {
                    VSTORE(${vw}, acc${i}_0, lanes, 0);
                    VSTORE(${vw}, acc${i}_1, lanes, ${vw});
                    const index_t at = (i0 + ${i}) * c_rs + colq * c_cs;
                    const index_t cols = MIN((index_t)${NR}, N - colq);
% if half:
                    const index_t wat = (batch * M + i0 + ${i}) * N + colq;
                    if (cols == ${NR} && c_cs == 1) {  // whole vectors: converted and stored as such
                        const ${V} scale = VSPLAT(${ACC}, ${vw}, alpha);
                        ${V} v0 = VMUL(acc${i}_0, scale), v1 = VMUL(acc${i}_1, scale);
                        if (kb > 0) {
                            v0 = VADD(v0, VLOAD(${vw}, W, wat));
                            v1 = VADD(v1, VLOAD(${vw}, W, wat + ${vw}));
                        } else if (beta != 0.0f) {
                            v0 = VFMA(VSPLAT(${ACC}, ${vw}, beta), VLOAD_${half}(${vw}, C, at), v0);
                            v1 = VFMA(VSPLAT(${ACC}, ${vw}, beta), VLOAD_${half}(${vw}, C, at + ${vw}), v1);
                        }
                        if (kb == blocks - 1) {
                            VSTORE_${half}(${vw}, v0, C, at);
                            VSTORE_${half}(${vw}, v1, C, at + ${vw});
                        } else {
                            VSTORE(${vw}, v0, W, wat);
                            VSTORE(${vw}, v1, W, wat + ${vw});
                        }
                    } else {
                        for (index_t e = 0; e < cols; ++e) {
                            float v = alpha * lanes[e];
                            if (kb > 0)
                                v += W[wat + e];
                            else if (beta != 0.0f)
                                v = FMA(beta, LOAD_${half}(C, at + e * c_cs), v);
                            if (kb == blocks - 1)
                                STORE_${half}(C, at + e * c_cs, v);
                            else
                                W[wat + e] = v;
                        }
                    }
% else:
                    if (cols == ${NR} && c_cs == 1) {
                        const ${V} scale = VSPLAT(${ACC}, ${vw}, alpha);
                        ${V} v0 = VMUL(VLOAD(${vw}, lanes, 0), scale);
                        ${V} v1 = VMUL(VLOAD(${vw}, lanes, ${vw}), scale);
                        if (kb > 0) {
                            v0 = VADD(v0, VLOAD(${vw}, C, at));
                            v1 = VADD(v1, VLOAD(${vw}, C, at + ${vw}));
                        } else if (beta != (${ACC})0) {
                            v0 = VFMA(VSPLAT(${ACC}, ${vw}, beta), VLOAD(${vw}, C, at), v0);
                            v1 = VFMA(VSPLAT(${ACC}, ${vw}, beta), VLOAD(${vw}, C, at + ${vw}), v1);
                        }
                        VSTORE(${vw}, v0, C, at);
                        VSTORE(${vw}, v1, C, at + ${vw});
                    } else {
                        for (index_t e = 0; e < cols; ++e) {
                            ${ACC} v = alpha * lanes[e];
                            if (kb > 0)
                                v += C[at + e * c_cs];
                            else if (beta != (${ACC})0)
                                v = FMA(beta, C[at + e * c_cs], v);
                            C[at + e * c_cs] = v;
                        }
                    }
% endif
                }
% endfor
            }
        }
    }
}
