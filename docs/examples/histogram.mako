## A histogram with atomics: each work-group counts into local memory, then adds its counts to the
## global histogram. Written only with the documented words; run by tests/test_language.py.
## Defines: T (the count type: unsigned int, int, uint64_t, int64_t), bins.
KERNEL void histogram(GLOBAL_MEM ${T}* RESTRICT hist, GLOBAL_MEM const unsigned char* RESTRICT data, const index_t n)
{
    LOCAL_MEM ${T} local_hist[${bins}];
    for (index_t b = LOCAL_ID(0); b < ${bins}; b += LOCAL_SIZE(0))
        local_hist[b] = 0;
    LOCAL_BARRIER;
    for (index_t i = GLOBAL_ID(0); i < n; i += GLOBAL_SIZE(0))   // a grid-stride loop: any launch size
        ATOMIC_ADD(&local_hist[data[i] % ${bins}], (${T})1);
    LOCAL_BARRIER;
    for (index_t b = LOCAL_ID(0); b < ${bins}; b += LOCAL_SIZE(0))
        if (local_hist[b] != 0)
            ATOMIC_ADD(&hist[b], local_hist[b]);
}
