## Local memory sized at launch: two LOCAL_MEM_DYNAMIC arrays of different types beside a fixed one.
DEVICE_FN float mirrored(LOCAL_MEM_ARG const float* tile, const index_t l, const index_t size)
{
    return tile[size - 1 - l];
}

KERNEL void reverse_groups(GLOBAL_MEM float* RESTRICT out_f, GLOBAL_MEM int* RESTRICT out_i,
                           GLOBAL_MEM const float* RESTRICT x, const index_t n)
{
    LOCAL_MEM_DYNAMIC(float, tile);
    LOCAL_MEM int fixed[4];
    LOCAL_MEM_DYNAMIC(int, marks);
    const index_t l = LOCAL_ID(0), size = LOCAL_SIZE(0), i = GLOBAL_ID(0);
    tile[l] = i < n ? x[i] : -1.0f;
    marks[l] = (int)(i * 3 + 1);
    if (l < 4)
        fixed[l] = (int)GROUP_ID(0);
    LOCAL_BARRIER;
    if (i < n) {
        out_f[i] = mirrored(tile, l, size);
        out_i[i] = marks[size - 1 - l] + fixed[l % 4] * 1000000;
    }
}

## An odd-sized byte array before a double one: each array starts aligned.
KERNEL void bytes_then_doubles(GLOBAL_MEM int* RESTRICT out)
{
    LOCAL_MEM_DYNAMIC(unsigned char, flags);
    LOCAL_MEM_DYNAMIC(int64_t, wide);
    const index_t l = LOCAL_ID(0);
    flags[l] = (unsigned char)(l + 1);
    wide[l] = (int64_t)l << 33;
    LOCAL_BARRIER;
    out[GLOBAL_ID(0)] = (int)flags[LOCAL_SIZE(0) - 1 - l] + (int)(wide[l] >> 33) * 1000;
}
