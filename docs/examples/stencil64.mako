## A 3-point stencil, out[i] = in[i-1] + 2 in[i] + in[i+1] (edges clamped), over elements
## [start, start + count) of arrays of n elements: every index is an index_t, so the same template
## runs on arrays past 2^31 elements (xgpu builds it with a 64-bit index_t for them).
KERNEL void stencil3(GLOBAL_MEM unsigned short* RESTRICT out, GLOBAL_MEM const unsigned char* RESTRICT in,
                     const index_t start, const index_t count, const index_t n)
{
    const index_t i = start + GLOBAL_ID(0);
    if (GLOBAL_ID(0) < count && i < n) {
        const index_t left = i > 0 ? i - 1 : 0;
        const index_t right = i + 1 < n ? i + 1 : n - 1;
        out[i - start] = (unsigned short)(in[left] + 2 * in[i] + in[right]);
    }
}
