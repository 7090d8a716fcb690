## 64-bit integers and indices: int64_t/uint64_t arithmetic past 2^32, index_t's width, and a kernel
## whose indices pass 2^31 when its array does.
KERNEL void wide_ints(GLOBAL_MEM int64_t* RESTRICT out, GLOBAL_MEM uint64_t* RESTRICT uout,
                      GLOBAL_MEM const int64_t* RESTRICT a, GLOBAL_MEM const bool_t* RESTRICT flags,
                      const int64_t base, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        out[i] = a[i] * 3 + base + (flags[i] ? 1 : 0);
        // not a[i] * 0x100000001: Mesa 22.3's rusticl aborts the process compiling that (a 128-bit value)
        uout[i] = ((uint64_t)a[i] << 32) + (uint64_t)a[i] * 5u + (uint64_t)i;
    }
    if (i == 0) {
        out[n] = (int64_t)sizeof(index_t);
        out[n + 1] = (int64_t)sizeof(uindex_t);
        out[n + 2] = (int64_t)sizeof(int64_t) * 100 + (int64_t)sizeof(uint64_t) * 10 + (int64_t)sizeof(bool_t);
    }
}

KERNEL void stamp_tail(GLOBAL_MEM unsigned char* RESTRICT a, const index_t start, const index_t n)
{
    const index_t i = start + GLOBAL_ID(0);
    if (i < n)
        a[i] = (unsigned char)(i % 251);
}
