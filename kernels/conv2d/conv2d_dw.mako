## Few-input-channel 2-D convolution for CPU runtimes (NCHW): depthwise layers (one input channel per
## group, any channel multiplier) and layers with a few input channels per group (an RGB stem: C = 3).
## y[n][k] = sum over the group's kcg input channels c of x[n][g * kcg + c] (*) w[k][c], g = k / kkg.
## One work-item (a work-group of its own) per group of one image and block of RB output rows, or per PL
## such units where planes are small (a work-group costs CPU runtimes a fraction of a microsecond: 7x7
## planes would spend more on that than on the plane).
##
## The work-item first copies the input rows its block reads, of its group's kcg input planes, into a
## buffer in local memory (on a CPU: its own cache-resident scratch), with the padding written as zeros
## around them and the rows long enough for whole vectors of output pixels. Every read of the window is
## then an unmasked vector load at a unit stride from cache, whatever the padding: no padding copy through
## ## memory, no gathers, no edge cases in the loop. The group's kkg output channels are then computed kb at a
## time from that buffer (copied once for all of them), rows of output pixels vw at a time: kb vector
## accumulators, each vector of input pixels read once for all kb (the output-channel blocking a stem
## needs), stored with vector stores: a row's last, partial vector too, its lanes past Q landing in the
## next rows that the work-item writes later; only where they would pass the block's last row, lane by lane.
##
## A column stride sw > 1: each buffer row holds the padded input row as sw phases, every sw-th column
## in each (column j at (j % sw) * Wph + j / sw, Wph = Wb / sw), so that neighbouring output pixels read
## neighbouring elements of one phase: vector loads at unit stride for stride-2 layers too.
##
## Defines: dtype; kr, ks (filter), ksh, ksw (strides), kdh, kdw (dilations), kcg (input channels per
## group), kkg (output channels per group: a multiple of kb), kb (output channels per work-item), vw
## (lanes), has_bias. Launch: global (ceil(N * K / kkg / PL), ceil(P / RB)), local (1, 1), local_mem
## {"rows": kcg planes of (RB - 1) * ksh + (kr - 1) * kdh + 1 rows of Wb elements of the compute type},
## where Wb = ksw * (ceil(Q / vw) * vw + (ks - 1) * kdw / ksw); with stage (optional, float16 and bfloat16
## storage with ksw > 1): one row of Wb more, a staging row each input row is converted into, in vectors.
<%
    T = ctype(dtype)
    half = storage_suffix(T)   # HALF (float16) or BF16 (bfloat16): storage read and written through their words
    ACC = "double" if T == "double" else "float"
    V = f"VEC({ACC}, {vw})"
    taps = kr * ks
    stage = context.get("stage", False) and bool(half) and ksw > 1
    assert kkg % kb == 0, "an output-channel block lies in one group"
%>
<%def name="half_row(dst)">
                {
                    // ncopy float16/bfloat16 elements of src converted into ${dst}, in vectors; the last, partial
                    // one too where a whole vector's read stays inside x (8 lanes converted at once and 6 of them
                    // kept cost less than 6 conversions one by one: 14x14 planes)
                    index_t j = 0;
                    for (; j + ${vw} <= ncopy; j += ${vw})
                        VSTORE(${vw}, VLOAD_${half}(${vw}, src, j), ${dst}, j);
                    if (j < ncopy && (index_t)(src - x) + j + ${vw} <= x_len) {
                        ${ACC} lanes[${vw}];
                        VSTORE(${vw}, VLOAD_${half}(${vw}, src, j), lanes, 0);
                        for (index_t e = 0; j + e < ncopy; ++e)
                            ${dst}[j + e] = lanes[e];
                        j = ncopy;
                    }
                    for (; j < ncopy; ++j)
                        ${dst}[j] = LOAD_${half}(src, j);
                }
</%def>
KERNEL REQD_WORK_GROUP_SIZE(1, 1, 1)
void conv2d_dw(
    GLOBAL_MEM ${T}* RESTRICT y,
    GLOBAL_MEM const ${T}* RESTRICT x,
    GLOBAL_MEM const ${T}* RESTRICT w,
    GLOBAL_MEM const ${T}* RESTRICT bias,
    const index_t N, const index_t C, const index_t H, const index_t W, const index_t K,
    const index_t P, const index_t Q, const index_t ph, const index_t pw,
    const index_t RB, const index_t Wb, const index_t PL)
{
    LOCAL_MEM_DYNAMIC(${ACC}, rows);
    const index_t oh0 = GLOBAL_ID(1) * RB;
    const index_t oh1 = MIN(oh0 + RB, P);
    // the input rows the block reads: ih0 .. ih0 + nrows - 1, of which rows i0 .. i1 - 1 lie in the image
    const index_t ih0 = oh0 * ${ksh} - ph;
    const index_t nrows = (oh1 - oh0 - 1) * ${ksh} + ${(kr - 1) * kdh + 1};
    const index_t i0 = MAX(-ih0, 0), i1 = MIN(H - ih0, nrows);
    // columns of the input a row of the buffer holds after its pw zeros (beyond Wb: read by no window)
    const index_t ncopy = MAX(MIN(W, Wb - pw), 0);
    const index_t Wph = Wb / ${ksw};
    const index_t plane_rows = nrows * Wb;
% if half and (ksw <= 2 or stage):
    const index_t x_len = N * C * H * W;  // the elements of x: no vector read passes it
% endif
    // the padding is the same zeros for every plane: written once, the planes' pixels then copied inside it
    for (index_t j = 0; j < ${kcg} * plane_rows; ++j)
        rows[j] = (${ACC})0;
    const index_t units = N * (K / ${kkg});
    const index_t u_end = MIN((GLOBAL_ID(0) + 1) * PL, units);
    for (index_t u = GLOBAL_ID(0) * PL; u < u_end; ++u) {
        // image n, group g: input channels g * kcg + c, output channels g * kkg + k
        const index_t n = u / (K / ${kkg}), g = u % (K / ${kkg});
        for (index_t c = 0; c < ${kcg}; ++c) {
            GLOBAL_MEM const ${T}* plane = x + (n * C + g * ${kcg} + c) * H * W;
            LOCAL_MEM_ARG ${ACC}* buffer = rows + c * plane_rows;
            for (index_t i = i0; i < i1; ++i) {
% if ksw == 1:
                LOCAL_MEM_ARG ${ACC}* row = buffer + i * Wb + pw;
% endif
                GLOBAL_MEM const ${T}* src = plane + (ih0 + i) * W;
% if ksw == 1 and half:
                ${half_row("row")}
% elif ksw == 1:
                index_t j = 0;
                for (; j + ${vw} <= ncopy; j += ${vw})
                    VSTORE(${vw}, VLOAD(${vw}, src, j), row, j);
                for (; j < ncopy; ++j)
                    row[j] = src[j];
% elif ksw == 2 and half and not stage:
                {
                    // float16/bfloat16, column stride 2: 2 * vw elements converted as two vectors, their even
                    // and odd lanes gathered into one vector per phase (no element converted alone, no
                    // staging row); a row's last, partial pair too where reading it stays inside x
                    LOCAL_MEM_ARG ${ACC}* d0 = buffer + i * Wb;
                    LOCAL_MEM_ARG ${ACC}* d1 = d0 + Wph;
                    index_t jj = 0;
                    if ((pw & 1) && ncopy > 0) {  // source column 0 at an odd padded column: phase 1
                        d1[pw >> 1] = LOAD_${half}(src, 0);
                        jj = 1;
                    }
                    for (; jj < ncopy; jj += ${2 * vw}) {
                        const index_t at = (pw + jj) >> 1;  // pw + jj is even here
                        const index_t left = ncopy - jj;
                        if (left >= ${2 * vw} || (index_t)(src - x) + jj + ${2 * vw} <= x_len) {
                            const ${V} a = VLOAD_${half}(${vw}, src, jj);
                            const ${V} b = VLOAD_${half}(${vw}, src, jj + ${vw});
                            ${V} e, o;
% for t in range(vw // 2):
                            VSET(e, ${t}, VGET(a, ${2 * t}));
                            VSET(e, ${vw // 2 + t}, VGET(b, ${2 * t}));
                            VSET(o, ${t}, VGET(a, ${2 * t + 1}));
                            VSET(o, ${vw // 2 + t}, VGET(b, ${2 * t + 1}));
% endfor
                            if (left >= ${2 * vw}) {
                                VSTORE(${vw}, e, d0, at);
                                VSTORE(${vw}, o, d1, at);
                            } else {
                                ${ACC} le[${vw}], lo[${vw}];
                                VSTORE(${vw}, e, le, 0);
                                VSTORE(${vw}, o, lo, 0);
                                for (index_t t = 0; t < (left + 1) / 2; ++t)
                                    d0[at + t] = le[t];
                                for (index_t t = 0; t < left / 2; ++t)
                                    d1[at + t] = lo[t];
                            }
                        } else {
                            for (index_t t = 0; t < (left + 1) / 2; ++t)
                                d0[at + t] = LOAD_${half}(src, jj + 2 * t);
                            for (index_t t = 0; t < left / 2; ++t)
                                d1[at + t] = LOAD_${half}(src, jj + 2 * t + 1);
                        }
                    }
                }
% else:
% if stage:
                // float16/bfloat16 storage: the row converted first, in vectors, into a staging row after
                // the planes (strided scalar conversions ran stride-2 layers at a quarter of float32's speed)
                LOCAL_MEM_ARG ${ACC}* stage = rows + ${kcg} * plane_rows;
                ${half_row("stage")}
% endif
                // phase by phase: reads at stride ksw (interleaved loads), unit-stride writes
                #pragma unroll
                for (index_t f = 0; f < ${ksw}; ++f) {
                    // columns col = idx * ksw + f of the padded row with pw <= col < pw + ncopy
                    const index_t lo = (MAX(pw - f, 0) + ${ksw - 1}) / ${ksw};
                    const index_t hi = MAX((pw + ncopy - f + ${ksw - 1}) / ${ksw}, lo);
                    LOCAL_MEM_ARG ${ACC}* dst = buffer + i * Wb + f * Wph;
% if stage:
                    LOCAL_MEM_ARG const ${ACC}* from = stage + (lo * ${ksw} + f - pw);
                    for (index_t idx = 0; idx < hi - lo; ++idx)
                        dst[lo + idx] = from[idx * ${ksw}];
% else:
                    GLOBAL_MEM const ${T}* from = src + (lo * ${ksw} + f - pw);
                    for (index_t idx = 0; idx < hi - lo; ++idx)
                        dst[lo + idx] = (${ACC})${f"LOAD_{half}(from, idx * {ksw})" if half else "from[idx * %d]" % ksw};
% endif
                }
% endif
            }
        }
      for (index_t k0 = g * ${kkg}; k0 < (g + 1) * ${kkg}; k0 += ${kb}) {
        // the block's filter taps (w is (K, kcg, kr, ks)), from cache
        ${ACC} taps[${kb * kcg * taps}];
% if half:
        // float16/bfloat16: whole vectors converted at once, the rest one by one
% for t0 in range(0, kb * kcg * taps - vw + 1, vw):
        VSTORE(${vw}, VLOAD_${half}(${vw}, w, k0 * ${kcg * taps} + ${t0}), taps, ${t0});
% endfor
% for t in range(kb * kcg * taps // vw * vw, kb * kcg * taps):
        taps[${t}] = LOAD_${half}(w, k0 * ${kcg * taps} + ${t});
% endfor
% else:
        #pragma unroll
        for (index_t t = 0; t < ${kb * kcg * taps}; ++t)
            taps[t] = w[k0 * ${kcg * taps} + t];
% endif
% for b in range(kb):
% if has_bias:
        const ${ACC} b${b} = (${ACC})${f"LOAD_{half}(bias, k0 + {b})" if half else f"bias[k0 + {b}]"};
% else:
        const ${ACC} b${b} = (${ACC})0;
% endif
% endfor
        for (index_t oh = oh0; oh < oh1; ++oh) {
            LOCAL_MEM_ARG const ${ACC}* top = rows + (oh - oh0) * ${ksh} * Wb;
            GLOBAL_MEM ${T}* out = y + ((n * K + k0) * P + oh) * Q;
            for (index_t ow0 = 0; ow0 < Q; ow0 += ${vw}) {
% for b in range(kb):
                ${V} acc${b} = VSPLAT(${ACC}, ${vw}, b${b});
% endfor
                for (index_t c = 0; c < ${kcg}; ++c) {
                    for (index_t r = 0; r < ${kr}; ++r) {
                        LOCAL_MEM_ARG const ${ACC}* line = top + c * plane_rows + r * ${kdh} * Wb + ow0;
                        const index_t t = c * ${taps} + r * ${ks};
% for s in range(ks):
                        {
                            const ${V} v = VLOAD(${vw}, line, ${(s * kdw) % ksw} * Wph + ${(s * kdw) // ksw});
% for b in range(kb):
                            acc${b} = VFMA(v, VSPLAT(${ACC}, ${vw}, taps[t + ${b * kcg * taps + s}]), acc${b});
% endfor
                        }
% endfor
                    }
                }
% for b in range(kb):
                // a whole vector, or one whose lanes past Q spill only into the block's later rows of this
                // channel, which this work-item writes afterwards (a lane-by-lane store per row cost 14x14
                // planes 40% of their time)
                if (oh * Q + ow0 + ${vw} <= oh1 * Q) {
% if half:
                    VSTORE_${half}(${vw}, acc${b}, out, ${b} * P * Q + ow0);
% else:
                    VSTORE(${vw}, acc${b}, out, ${b} * P * Q + ow0);
% endif
                } else {
                    ${ACC} lanes[${vw}];
                    VSTORE(${vw}, acc${b}, lanes, 0);
                    for (index_t e = 0; e < Q - ow0; ++e)
% if half:
                        STORE_${half}(out, ${b} * P * Q + ow0 + e, lanes[e]);
% else:
                        out[${b} * P * Q + ow0 + e] = lanes[e];
% endif
                }
% endfor
            }
        }
      }
    }
}
