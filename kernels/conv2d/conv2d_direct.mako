## Direct 2-D convolution, one output element per work-item: for depthwise layers and small
## reductions, where an implicit GEMM has too little to reduce over.
## in_nchw=False: x is NHWC; work-item (k, ow, n * P + oh): neighbouring work-items, neighbouring channels.
## in_nchw=True:  x is NCHW; work-item (ow, oh, n * K + k): neighbouring work-items, neighbouring pixels
##                (contiguous reads of x and, with out_nchw, contiguous writes: what CPU vectorisers need).
## Weights: NHWC's (R, S, Cg, K), so that neighbouring output channels (lanes) read neighbouring weights;
## with in_nchw, NCHW's (K, Cg, R, S) as they lie (lanes are pixels there and share one weight: no
## permutation pass, one launch fewer a call).
## Defines: dtype, has_bias, in_nchw, out_nchw; the filter's shape, strides and dilations as constants
## (kr, ks, kcg, kkg, kgroups, ksh, ksw, kdh, kdw: R, S, Cg, Kg, groups, sh, sw, dh, dw), so that the
## compiler unrolls the window and sees which reads neighbouring work-items share (a stride known only
## at run time makes CPU vectorisers gather: depthwise 3x3 on Intel, 7.7 against 41 GF/s); padded: the
## window may leave the image and is masked (NCHW on CPUs gets the padding written into x instead, pad.mako:
## lanes are pixels there, and a clamped address per lane is a gather). Indices are computed whole, with the
## lane's term added last: Intel's vectoriser gathers from a pointer that was offset by the lane first.
## phased (NCHW, unpadded, ksw > 1): each row of x is stored as ksw runs of every ksw-th column (pad.mako's
## phases; W is the stored row length), so that neighbouring output pixels read neighbouring addresses
## (a column stride makes CPU vectorisers gather: depthwise 3x3 stride 2 on Intel, see docs/conv2d.md).
## vw > 1 (float32/float64), for compilers that vectorise within a work-item (PoCL): each work-item
## computes vw neighbouring output pixels of a row with vector loads (NCHW, unpadded, stride 1 along
## rows), or vw neighbouring output channels of one pixel (NHWC, one group or depthwise with Kg = 1).
<%
    T = ctype(dtype)
    half = storage_suffix(T)   # HALF (float16) or BF16 (bfloat16): storage only, read and written through their words
    ACC = "double" if T == "double" else "float"
    def load(ptr, idx):
        return f"LOAD_{half}({ptr}, {idx})" if half else f"{ptr}[{idx}]"

    def w_at(c, k):
        # weight (r, s, c) of output channel k, r and s the window loops' variables
        if in_nchw:
            return f"(({k} * {kcg} + {c}) * {kr} + r) * {ks} + s"
        return f"(r * {ks} + s) * {kcg} * K + {c} * K + {k}"

    def column(ow):
        # the input column of output column ow for window column s (unrolled: the phase folds to constants)
        if phased:
            return f"((s * {kdw}) % {ksw}) * (W / {ksw}) + {ow} + (s * {kdw}) / {ksw}"
        return f"{ow} * {ksw} + s * {kdw}"
%>
<%def name="group_of_k()">
% if kgroups == 1:
        const index_t g = 0;
% elif kkg == 1:
        const index_t g = k;
% else:
        const index_t g = k / ${kkg};
% endif
</%def>
<%def name="x_index(ih, iw)">\
% if in_nchw:
((n * C + g * ${kcg} + c) * H + ${ih}) * W + ${iw}\
% else:
((n * H + ${ih}) * W + ${iw}) * C + g * ${kcg} + c\
% endif
</%def>
<%def name="store(ow, value, k='k')">
        {
            ${ACC} out = ${value};
% if has_bias:
            out += (${ACC})${load("bias", k)};
% endif
% if out_nchw:
            const index_t at = ((n * K + ${k}) * P + oh) * Q + ${ow};
% else:
            const index_t at = ((n * P + oh) * Q + ${ow}) * K + ${k};
% endif
% if half:
            STORE_${half}(y, at, out);
% else:
            y[at] = out;
% endif
        }
</%def>
<%def name="one_output(ow)">
        ${ACC} acc = (${ACC})0;
        #pragma unroll
        for (index_t r = 0; r < ${kr}; ++r) {
% if padded:
            // no branches: the padding reads a valid address and counts it zero (vectorisers keep lanes together)
            const index_t ih_raw = oh * ${ksh} - ph + r * ${kdh};
            const int row_in = ih_raw >= 0 && ih_raw < H;
            const index_t ih = row_in ? ih_raw : 0;
% else:
            const index_t ih = oh * ${ksh} + r * ${kdh};
% endif
            #pragma unroll
            for (index_t s = 0; s < ${ks}; ++s) {
% if padded:
                const index_t iw_raw = ${ow} * ${ksw} - pw + s * ${kdw};
                const int inside = row_in && iw_raw >= 0 && iw_raw < W;
                const index_t iw = inside ? iw_raw : 0;
                const ${ACC} mask = inside ? (${ACC})1 : (${ACC})0;
% else:
                // no padding (or padding already written into x): every window lies inside the image
                const index_t iw = ${column(ow)};
% endif
                #pragma unroll
                for (index_t c = 0; c < ${kcg}; ++c) {
                    const index_t xo = ${x_index("ih", "iw")};
                    acc = FMA((${ACC})${load("x", "xo")}${" * mask" if padded else ""}, (${ACC})${load("w", w_at("c", "k"))}, acc);
                }
            }
        }
        ${store(ow, "acc")}
</%def>
KERNEL void conv2d_direct(
    GLOBAL_MEM ${T}* RESTRICT y,
    GLOBAL_MEM const ${T}* RESTRICT x,
    GLOBAL_MEM const ${T}* RESTRICT w,
    GLOBAL_MEM const ${T}* RESTRICT bias,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t P, const index_t Q, const index_t K,
    const index_t R, const index_t S, const index_t Cg, const index_t Kg,
    const index_t sh, const index_t sw, const index_t ph, const index_t pw,
    const index_t dh, const index_t dw)
{
% if vw > 1 and not in_nchw:
<% assert kgroups == 1 or (kcg, kkg) == (1, 1), "NHWC channel vectors need one group or a depthwise layer" %>\
    const index_t k0 = GLOBAL_ID(0) * ${vw};
    const index_t ow = GLOBAL_ID(1);
    const index_t nph = GLOBAL_ID(2);
    if (k0 < K && ow < Q && nph < N * P) {
        const index_t n = nph / P, oh = nph % P;
        if (k0 + ${vw} <= K) {
            // vw output channels of one pixel: the window is the same for all of them, so the padding
            // is a branch; x is read as one channel for all (one group) or vw channels (depthwise)
            VEC(${ACC}, ${vw}) acc = VSPLAT(${ACC}, ${vw}, 0);
            #pragma unroll
            for (index_t r = 0; r < ${kr}; ++r) {
                const index_t ih = oh * ${ksh} - ph + r * ${kdh};
                #pragma unroll
                for (index_t s = 0; s < ${ks}; ++s) {
                    const index_t iw = ow * ${ksw} - pw + s * ${kdw};
                    if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                        #pragma unroll
                        for (index_t c = 0; c < ${kcg}; ++c) {
% if kgroups == 1:
                            const VEC(${ACC}, ${vw}) a = VSPLAT(${ACC}, ${vw}, x[((n * H + ih) * W + iw) * C + c]);
% else:
                            const VEC(${ACC}, ${vw}) a = VLOAD(${vw}, x, ((n * H + ih) * W + iw) * C + k0);
% endif
                            acc = VFMA(a, VLOAD(${vw}, w, ${w_at("c", "k0")}), acc);
                        }
                    }
                }
            }
            ${ACC} lanes[${vw}];
            VSTORE(${vw}, acc, lanes, 0);
            #pragma unroll
            for (index_t e = 0; e < ${vw}; ++e)
                ${store("ow", "lanes[e]", "k0 + e")}
        } else {
            // the last, partial block of channels
            for (index_t k = k0; k < K; ++k) {
                ${group_of_k()}
                ${one_output("ow")}
            }
        }
    }
% elif vw > 1:
    const index_t ow0 = GLOBAL_ID(0) * ${vw};
    const index_t oh = GLOBAL_ID(1);
    const index_t nk = GLOBAL_ID(2);
    if (ow0 < Q && oh < P && nk < N * K) {
        const index_t n = nk / K, k = nk % K;
        ${group_of_k()}
        if (ow0 + ${vw} <= Q) {
            VEC(${ACC}, ${vw}) acc = VSPLAT(${ACC}, ${vw}, 0);
            #pragma unroll
            for (index_t r = 0; r < ${kr}; ++r) {
                const index_t ih = oh * ${ksh} + r * ${kdh};
                #pragma unroll
                for (index_t s = 0; s < ${ks}; ++s) {
                    const index_t iw = ${column("ow0") if phased else f"ow0 + s * {kdw}"};
                    #pragma unroll
                    for (index_t c = 0; c < ${kcg}; ++c)
                        acc = VFMA(VLOAD(${vw}, x, ${x_index("ih", "iw")}), VSPLAT(${ACC}, ${vw}, w[${w_at("c", "k")}]), acc);
                }
            }
            ${ACC} lanes[${vw}];
            VSTORE(${vw}, acc, lanes, 0);
            #pragma unroll
            for (index_t e = 0; e < ${vw}; ++e)
                ${store("ow0 + e", "lanes[e]")}
        } else {
            // the row's last, partial block
            for (index_t ow = ow0; ow < Q; ++ow) {
                ${one_output("ow")}
            }
        }
    }
% else:
% if in_nchw:
    const index_t ow = GLOBAL_ID(0);
    const index_t oh = GLOBAL_ID(1);
    const index_t nk = GLOBAL_ID(2);
    if (ow < Q && oh < P && nk < N * K) {
        const index_t n = nk / K, k = nk % K;
% else:
    const index_t k = GLOBAL_ID(0);
    const index_t ow = GLOBAL_ID(1);
    const index_t nph = GLOBAL_ID(2);
    if (k < K && ow < Q && nph < N * P) {
        const index_t n = nph / P, oh = nph % P;
% endif
        ${group_of_k()}
        ${one_output("ow")}
    }
% endif
}
