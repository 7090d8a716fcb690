## Batched transpose for GPUs: out[b][j][i] = in[b][i][j], in is (batches, rows, cols) (NCHW -> NHWC)
## through 32x32 tiles in local memory, so that reads and writes both coalesce; work-group (32, 8), each
## work-item moves 4 elements. CPUs take pad_nhwc.mako instead (tiles cost them: 12-17 ms against 1.6 ms
## for 3.2 M floats on the Intel CPU runtime and on PoCL). Defines: dtype.
<% P = ctype(dtype); T = "unsigned short" if storage_suffix(P) else P %>
KERNEL void transpose(
    GLOBAL_MEM ${P}* RESTRICT out_,
    GLOBAL_MEM const ${P}* RESTRICT in_,
    const index_t rows, const index_t cols)
{
    const index_t b = GROUP_ID(2);
    // float16 moves as the 16-bit integer of the same bits
    GLOBAL_MEM const ${T}* in = (GLOBAL_MEM const ${T}*)in_ + b * rows * cols;
    GLOBAL_MEM ${T}* out = (GLOBAL_MEM ${T}*)out_ + b * rows * cols;
    LOCAL_MEM ${T} tile[32][33];
    const index_t tx = LOCAL_ID(0), ty = LOCAL_ID(1);
    const index_t col0 = GROUP_ID(0) * 32, row0 = GROUP_ID(1) * 32;
    #pragma unroll
    for (index_t k = 0; k < 32; k += 8) {
        const index_t r = row0 + ty + k, c = col0 + tx;
        if (r < rows && c < cols)
            tile[ty + k][tx] = in[r * cols + c];
    }
    LOCAL_BARRIER;
    #pragma unroll
    for (index_t k = 0; k < 32; k += 8) {
        const index_t c = col0 + ty + k, r = row0 + tx;
        if (r < rows && c < cols)
            out[c * rows + r] = tile[tx][ty + k];
    }
}
