## Input with its padding written out as zeros, for CPUs: the convolution kernels then read windows
## that never leave the image, with no masks and, in the direct kernel, no clamped addresses (which CPU
## vectorisers turn into gathers). Measured on the Intel CPU runtime: the implicit-GEMM kernel on N8 C64
## 56x56 K64 3x3 206 against 164 GF/s; docs/benchmarks.md.
## in: x, (N, H, W, C), or with in_nchw (N, C, H, W); out: (N, Hp, Wp, C), or with out_nchw (N, C, Hp, Wp).
## out pixel (hp, wp) is in pixel (hp * ssh - pt, wp * ssw - pl): with strides ssh, ssw > 1 the copy keeps
## every ssh-th row and ssw-th column (a 1x1 layer with a stride becomes a plain matrix product).
## phases > 1 (out_nchw): each output row is stored as `phases` runs of Wq = ceil(Wp / phases) columns,
## column wp at (wp % phases) * Wq + wp / phases, so that a kernel with column stride `phases` reads
## neighbouring output pixels from neighbouring addresses (the direct kernel's stride-2 layers).
## Neighbouring work-items write neighbouring elements, one division per work-item:
##   NHWC out: work-item (c, wp, n * Hp + hp), or with row_loop (c, 0, n * Hp + hp) walking the row's
##             pixels (for runtimes that run work-items one by one: PoCL);
##   NCHW out: work-item (wp, hp, n * C + c) (with phases: (wp / phases, hp, n * C + c), one per phase).
## The layouts are compile-time, so that CPU vectorisers see unit strides (with strides passed as
## arguments, Intel's runtime gathers every load: 1.9 against 0.45 ms for 3.2 M floats, NCHW to NCHW).
## A copy needs no arithmetic: float16 moves as the 16-bit integer of the same bits.
## rows (CPU runtimes): one work-item per output row of pixels (or channel plane), in a work-group of its
##   own, with the padding's zeros, the row's interior and the right-hand zeros as three plain loops. The
##   interior loop has unit (or ssw) strides that the compiler vectorises within the work-item, where the
##   element form leaves a CPU runtime a masked (gathering) load per lane (NCHW out: a work-item per
##   channel, walking its rows): on an AVX2 CPU both runtimes
##   ran that form at 1-2 GB/s. NCHW in and NHWC out: the interior walks pixels, then channels, so that
##   the writes are contiguous and the reads come from the channels' rows, a few KiB held in L1.
## Defines: dtype, in_nchw, out_nchw, row_loop, ssh, ssw, phases, rows.
<% P = ctype(dtype); T = "unsigned short" if storage_suffix(P) else P %>
<%def name="copy(at)">
        {
        const int inside = h >= 0 && h < H && w >= 0 && w < W;
% if in_nchw:
        const index_t from = ((n * C + c) * H + h) * W + w;
% else:
        const index_t from = ((n * H + h) * W + w) * C + c;
% endif
        out[${at}] = inside ? in[from] : (${T})0;
        }
</%def>
% if rows:
KERNEL REQD_WORK_GROUP_SIZE(1, 1, 1)
void pad(
    GLOBAL_MEM ${P}* RESTRICT out_,
    GLOBAL_MEM const ${P}* RESTRICT in_,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t Hp, const index_t Wp, const index_t pt, const index_t pl)
{
    GLOBAL_MEM ${T}* out = (GLOBAL_MEM ${T}*)out_;
    GLOBAL_MEM const ${T}* in = (GLOBAL_MEM const ${T}*)in_;
    // output columns wp in [lo, hi) read input column wp * ssw - pl; the others are zeros
    const index_t lo = MIN((pl + ${ssw - 1}) / ${ssw}, Wp);
    const index_t hi = MAX(lo, MIN(Wp, (W - 1 + pl) / ${ssw} + 1));
% if out_nchw:
    // work-item n * C + c: the rows of one channel, each Wq * phases long
    const index_t nc = GLOBAL_ID(0);
    const index_t Wq = (Wp + ${phases - 1}) / ${phases};
    for (index_t hp = 0; hp < Hp; ++hp) {
        const index_t h = hp * ${ssh} - pt;
        GLOBAL_MEM ${T}* dst = out + (nc * Hp + hp) * Wq * ${phases};
        if (h < 0 || h >= H) {
            for (index_t wp = 0; wp < Wq * ${phases}; ++wp)
                dst[wp] = (${T})0;
            continue;
        }
% if in_nchw:
        GLOBAL_MEM const ${T}* src = in + (nc * H + h) * W - pl;
% else:
        const index_t n = nc / C, c = nc % C;
        GLOBAL_MEM const ${T}* src = in + ((n * H + h) * W - pl) * C + c;
% endif
% if phases > 1:
        // the row as ${phases} runs of Wq columns: column wp = j * ${phases} + f at f * Wq + j
        for (index_t f = 0; f < ${phases}; ++f) {
            GLOBAL_MEM ${T}* run = dst + f * Wq;
            // j with lo <= j * ${phases} + f < hi read the input; the others (past Wp too) are zeros
            const index_t jlo = MIN(MAX(lo - f + ${phases - 1}, 0) / ${phases}, Wq);
            const index_t jhi = MAX(jlo, MIN(MAX(hi - f + ${phases - 1}, 0) / ${phases}, Wq));
            for (index_t j = 0; j < jlo; ++j)
                run[j] = (${T})0;
            for (index_t j = jlo; j < jhi; ++j)
% if in_nchw:
                run[j] = src[(j * ${phases} + f) * ${ssw}];
% else:
                run[j] = src[(j * ${phases} + f) * ${ssw} * C];
% endif
            for (index_t j = jhi; j < Wq; ++j)
                run[j] = (${T})0;
        }
% else:
        for (index_t wp = 0; wp < lo; ++wp)
            dst[wp] = (${T})0;
        for (index_t wp = lo; wp < hi; ++wp)
% if in_nchw:
            dst[wp] = src[wp * ${ssw}];
% else:
            dst[wp] = src[wp * ${ssw} * C];
% endif
        for (index_t wp = hi; wp < Wp; ++wp)
            dst[wp] = (${T})0;
% endif
    }
% else:
    // work-item (n * Hp + hp, 0): one row of pixels, every channel
    const index_t nh = GLOBAL_ID(0);
    const index_t n = nh / Hp, h = nh % Hp * ${ssh} - pt;
    GLOBAL_MEM ${T}* dst = out + nh * Wp * C;
    if (h < 0 || h >= H) {
        for (index_t e = 0; e < Wp * C; ++e)
            dst[e] = (${T})0;
        return;
    }
    for (index_t e = 0; e < lo * C; ++e)
        dst[e] = (${T})0;
% if in_nchw:
    GLOBAL_MEM const ${T}* src = in + (n * C * H + h) * W - pl;
    for (index_t wp = lo; wp < hi; ++wp) {
        GLOBAL_MEM ${T}* px = dst + wp * C;
        GLOBAL_MEM const ${T}* from = src + wp * ${ssw};
        for (index_t c = 0; c < C; ++c)
            px[c] = from[c * H * W];
    }
% else:
    GLOBAL_MEM const ${T}* src = in + ((n * H + h) * W - pl) * C;
    for (index_t wp = lo; wp < hi; ++wp) {
        GLOBAL_MEM ${T}* px = dst + wp * C;
        GLOBAL_MEM const ${T}* from = src + wp * ${ssw} * C;
        for (index_t c = 0; c < C; ++c)
            px[c] = from[c];
    }
% endif
    for (index_t e = hi * C; e < Wp * C; ++e)
        dst[e] = (${T})0;
% endif
}
% else:
KERNEL void pad(
    GLOBAL_MEM ${P}* RESTRICT out_,
    GLOBAL_MEM const ${P}* RESTRICT in_,
    const index_t N, const index_t H, const index_t W, const index_t C,
    const index_t Hp, const index_t Wp, const index_t pt, const index_t pl)
{
    // float16 moves as the 16-bit integer of the same bits
    GLOBAL_MEM ${T}* out = (GLOBAL_MEM ${T}*)out_;
    GLOBAL_MEM const ${T}* in = (GLOBAL_MEM const ${T}*)in_;
% if out_nchw and phases > 1:
    const index_t Wq = (Wp + ${phases - 1}) / ${phases};
    const index_t j = GLOBAL_ID(0);
    const index_t hp = GLOBAL_ID(1);
    const index_t nc = GLOBAL_ID(2);
    if (j < Wq && hp < Hp && nc < N * C) {
        const index_t n = nc / C, c = nc % C, h = hp * ${ssh} - pt;
% for f in range(phases):
        {
            // the column of phase ${f}: past Wp, a zero that no window reads
            const index_t w = (j * ${phases} + ${f}) < Wp ? (j * ${phases} + ${f}) * ${ssw} - pl : -1;
            ${copy(f"(nc * Hp + hp) * Wq * {phases} + {f} * Wq + j")}
        }
% endfor
% elif out_nchw:
    const index_t wp = GLOBAL_ID(0);
    const index_t hp = GLOBAL_ID(1);
    const index_t nc = GLOBAL_ID(2);
    if (wp < Wp && hp < Hp && nc < N * C) {
        const index_t n = nc / C, c = nc % C, h = hp * ${ssh} - pt, w = wp * ${ssw} - pl;
        ${copy("(nc * Hp + hp) * Wp + wp")}
% else:
    const index_t c = GLOBAL_ID(0);
    const index_t nh = GLOBAL_ID(2);
% if row_loop:
    if (c < C && nh < N * Hp) {
        const index_t n = nh / Hp, h = nh % Hp * ${ssh} - pt;
        for (index_t wp = 0; wp < Wp; ++wp) {
            const index_t w = wp * ${ssw} - pl;
            ${copy("(nh * Wp + wp) * C + c")}
        }
% else:
    const index_t wp = GLOBAL_ID(1);
    if (c < C && wp < Wp && nh < N * Hp) {
        const index_t n = nh / Hp, h = nh % Hp * ${ssh} - pt, w = wp * ${ssw} - pl;
        ${copy("(nh * Wp + wp) * C + c")}
% endif
% endif
    }
}
% endif
