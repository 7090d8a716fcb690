## Implicit-GEMM 2-D convolution, NHWC: the GEMM template's tiling with the im2col matrix never built.
##
## Per group g: C[m, k] = sum over (r, s, c) of A[m, (r, s, c)] * B[(r, s, c), k], where
##   m = (n, oh, ow) is an output pixel (M = N * P * Q rows),
##   A[m, (r, s, c)] = x[n, oh*sh - ph + r*dh, ow*sw - pw + s*dw, g*Cg + c] (0 in the padding): implicit,
##   B = the group's weights, (R, S, Cg, Kg) = a row-major (R*S*Cg) x Kg matrix with row stride ldw, at
##       w + g * wgs: either permuted (NCHW weights, or groups whose Kg is not whole column tiles) with
##       ldw = Kg rounded up to whole column tiles and zeros past Kg, so that no read of B needs a clamp,
##       or NHWC weights (R, S, Cg, K) as they lie: ldw = K, wgs = Kg,
##   C = y[n, oh, ow, g*Kg + k]: the NHWC output, a row-major M x K matrix.
## Tiles, register blocks, strided or vector columns and K blocking are the GEMM's (kernels/gemm/tuning.py):
## A is read as broadcasts along the pixel rows, B as vectors along output channels.
## The last tile of rows, when M is at least one tile, is computed as the whole tile that ends at row M,
## on the fast path, and stores only the rows it owns (a clamped edge tile costs CPU runtimes several
## whole ones); only M < tm takes the clamped path.
##
## Defines: dtype, has_bias, out_nchw (write y as NCHW instead of NHWC), and a direct GEMM variant
## (tm, tn, wm, wn, contiguous_cols, vw; kc > 0: a barrier after each (r, s) step of the window).
<%
    T = ctype(dtype)
    half = storage_suffix(T)   # HALF (float16) or BF16 (bfloat16): storage only, read and written through their words
    ACC = "double" if T == "double" else "float"
    TX, TY = tn // wn, tm // wm
    NV = wn // vw

    def load(ptr, idx):
        return f"LOAD_{half}({ptr}, {idx})" if half else f"{ptr}[{idx}]"

    def col_of(j):
        return f"tx * {wn} + {j}" if contiguous_cols else f"tx + {j} * {TX}"
%>
<%def name="rows_setup(clamp)">
    // the pixel each of this work-item's rows computes, and where its input window starts; scalars
    // rather than arrays, so that CPU vectorisers see they are the same for every column
% for i in range(wm):
% if clamp:
    const index_t m${i} = MIN(row0 + ty + ${i * TY}, M - 1);
% else:
    const index_t m${i} = row0 + ty + ${i * TY};
% endif
    const index_t pq${i} = m${i} % PQ;
    const index_t ih0_${i} = (pq${i} / Q) * sh - ph;
    const index_t iw0_${i} = (pq${i} % Q) * sw - pw;
    const index_t xrow${i} = (m${i} / PQ) * H * W * C + g * Cg;
% endfor
</%def>
<%def name="window_step()">
% if padded:
            // this (r, s): each row's input pixel, or a valid address and a zero weight in the padding
% for i in range(wm):
            const index_t ih${i} = ih0_${i} + r * dh, iw${i} = iw0_${i} + s * dw;
            const int inside${i} = ih${i} >= 0 && ih${i} < H && iw${i} >= 0 && iw${i} < W;
            const index_t xo${i} = xrow${i} + (inside${i} ? (ih${i} * W + iw${i}) * C : 0);
            const ${ACC} mask${i} = inside${i} ? (${ACC})1 : (${ACC})0;
% endfor
% else:
            // no padding: every window lies inside the image
% for i in range(wm):
            const index_t xo${i} = xrow${i} + ((ih0_${i} + r * dh) * W + iw0_${i} + s * dw) * C;
% endfor
% endif
            const index_t wo = (r * S + s) * Cg * ldw;
</%def>
<%def name="all_inside()">${" && ".join(f"inside{i}" for i in range(wm))}</%def>
<%def name="masked_x(i, masked)">${load("x", f"xo{i} + c")}${f" * mask{i}" if masked else ""}</%def>
<%def name="scalar_c_loop(masked, col)">
            for (index_t c = 0; c < Cg; ++c) {
                ${ACC} a[${wm}], b[${wn}];
% for i in range(wm):
                a[${i}] = (${ACC})${masked_x(i, masked)};
% endfor
                #pragma unroll
                for (index_t j = 0; j < ${wn}; ++j)
                    b[j] = (${ACC})${load("wg", f"wo + c * ldw + {col}")};
                #pragma unroll
                for (index_t i = 0; i < ${wm}; ++i) {
                    #pragma unroll
                    for (index_t j = 0; j < ${wn}; ++j)
                        acc[i][j] = FMA(a[i], b[j], acc[i][j]);
                }
            }
</%def>
<%def name="vector_c_loop(masked)">
            for (index_t c = 0; c < Cg; ++c) {
                VEC(${ACC}, ${vw}) b[${NV}];
                #pragma unroll
                for (index_t v = 0; v < ${NV}; ++v)
                    b[v] = VLOAD(${vw}, wg, wo + c * ldw + colv + v * ${vw});
% for i in range(wm):
                {
                    const VEC(${ACC}, ${vw}) a = VSPLAT(${ACC}, ${vw}, ${masked_x(i, masked)});
                    #pragma unroll
                    for (index_t v = 0; v < ${NV}; ++v)
                        acc[${i}][v] = VFMA(a, b[v], acc[${i}][v]);
                }
% endfor
            }
</%def>
<%def name="close_window()">
% if kc:
            // a CPU runtime steps the group's work-items through the window together: B stays in cache
            LOCAL_BARRIER;
% endif
        }
    }
</%def>
<%def name="store(row, col, value)">
            if (${row} >= own_row && ${row} < M && ${col} < Kg) {
                ${ACC} out = ${value};
% if has_bias:
                out += (${ACC})${load("bias", f"g * Kg + {col}")};
% endif
% if out_nchw:
                const index_t at = (${row} / PQ) * K * PQ + (g * Kg + ${col}) * PQ + ${row} % PQ;
% else:
                const index_t at = ${row} * K + g * Kg + ${col};
% endif
% if half:
                STORE_${half}(y, at, out);
% else:
                y[at] = out;
% endif
            }
</%def>
<%def name="scalar_path(clamp)">
    ${rows_setup(clamp)}
    ${ACC} acc[${wm}][${wn}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j)
            acc[i][j] = (${ACC})0;
    }
<% col = f"col0 + {col_of('j')}" %>
    for (index_t r = 0; r < R; ++r) {
        for (index_t s = 0; s < S; ++s) {
            ${window_step()}
            // always masked here: a branch on the window makes the Intel CPU runtime stop vectorising
            // across work-items (33 against 90 GF/s); the vector path below takes the branch
            ${scalar_c_loop(padded, col)}
    ${close_window()}
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ty + i * ${TY};
        #pragma unroll
        for (index_t j = 0; j < ${wn}; ++j) {
            const index_t col = col0 + ${col_of("j")};
            ${store("row", "col", "acc[i][j]")}
        }
    }
</%def>
<%def name="vector_path()">
    ${rows_setup(False)}
    VEC(${ACC}, ${vw}) acc[${wm}][${NV}];
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        #pragma unroll
        for (index_t v = 0; v < ${NV}; ++v)
            acc[i][v] = VSPLAT(${ACC}, ${vw}, 0);
    }
    const index_t colv = col0 + tx * ${wn};
    for (index_t r = 0; r < R; ++r) {
        for (index_t s = 0; s < S; ++s) {
            ${window_step()}
            // a window wholly inside the image needs no masks (PoCL: 159 against 119 GF/s in NHWC)
% if padded:
            if (${all_inside()}) {
                ${vector_c_loop(False)}
            } else {
                ${vector_c_loop(True)}
            }
% else:
            ${vector_c_loop(False)}
% endif
    ${close_window()}
    #pragma unroll
    for (index_t i = 0; i < ${wm}; ++i) {
        const index_t row = row0 + ty + i * ${TY};
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
KERNEL void conv2d_igemm(
    GLOBAL_MEM ${T}* RESTRICT y,
    GLOBAL_MEM const ${T}* RESTRICT x,
    GLOBAL_MEM const ${T}* RESTRICT w,
    GLOBAL_MEM const ${T}* RESTRICT bias,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t P, const index_t Q, const index_t K,
    const index_t R, const index_t S, const index_t Cg, const index_t Kg,
    const index_t sh, const index_t sw, const index_t ph, const index_t pw,
    const index_t dh, const index_t dw, const index_t ldw, const index_t wgs)
{
    const index_t tx = LOCAL_ID(0);
    const index_t ty = LOCAL_ID(1);
    const index_t g = GROUP_ID(2);
    const index_t PQ = P * Q;
    const index_t M = N * PQ;
    // the rows this work-group owns (and alone stores), and the tile it computes
    const index_t own_row = GROUP_ID(1) * ${tm};
    const index_t row0 = M >= ${tm} ? MIN(own_row, M - ${tm}) : own_row;
    const index_t col0 = GROUP_ID(0) * ${tn};
    GLOBAL_MEM const ${T}* wg = w + g * wgs;

    if (row0 + ${tm} <= M) {
% if vw > 1:
        ${vector_path()}
% else:
        ${scalar_path(False)}
% endif
    } else {
        ${scalar_path(True)}
    }
}
