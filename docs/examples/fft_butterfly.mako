## A radix-2 FFT of each row of n = 2**log2n complex values: one work-group of n/2 work-items per row,
## each doing one butterfly per stage, the row held in local memory sized at launch
## (local_mem={"row": n * itemsize}). Defines: C (cfloat_t or cdouble_t).
<% T = "float" if C == "cfloat_t" else "double"; two_pi = "6.283185307179586" + ("f" if T == "float" else "") %>\
KERNEL void fft_rows(GLOBAL_MEM ${C}* RESTRICT out, GLOBAL_MEM const ${C}* RESTRICT in, const int log2n)
{
    LOCAL_MEM_DYNAMIC(${C}, row);
    const index_t n = (index_t)1 << log2n, pairs = n >> 1, t = LOCAL_ID(0), first = GROUP_ID(0) * n;
    for (index_t k = t; k < n; k += pairs) {  // load in bit-reversed order
        index_t r = 0;
        for (int b = 0; b < log2n; ++b)
            r |= ((k >> b) & 1) << (log2n - 1 - b);
        row[r] = in[first + k];
    }
    LOCAL_BARRIER;
    for (int s = 1; s <= log2n; ++s) {
        const index_t span = (index_t)1 << (s - 1), j = t % span, top = (t / span) * 2 * span + j;
        const ${C} w = CEXP(CMAKE(${C}, 0, -${two_pi} * (${T})j / (${T})(2 * span)));  // twiddle factor
        const ${C} a = row[top], b = CMUL(w, row[top + span]);
        LOCAL_BARRIER;  // everyone has read this stage's inputs
        row[top] = CADD(a, b);
        row[top + span] = CSUB(a, b);
        LOCAL_BARRIER;
    }
    for (index_t k = t; k < n; k += pairs)
        out[first + k] = row[k];
}
