## Transpose a batch of row-major R x S matrices into S x R ones: how the GEMM packs a transposed
## operand once (an O(R*S) copy) into the layout its fast kernels read with contiguous loads.
##
## A work-group (block) moves a T x T tile through local (shared) memory: it reads rows of the source
## and writes rows of the destination, so both sides stay contiguous (coalesced on GPUs, whole cache
## lines on CPUs). Each work-item moves T / RY elements. The copy is bitwise (through an unsigned integer
## or double of the element's size), so float16 needs no arithmetic support and NaNs pass unchanged.
##
## CPU runtimes (``blocks`` > 0): one work-item copies a strip of ``blocks`` T x T blocks on its own, no
## local memory and no barrier; a block (a few KiB) stays in the core's L1 cache between its reads and
## its writes.
##
## Defines: dtype (any 2-, 4- or 8-byte dtype), t (tile side), ry (work-items along the tile's rows),
## blocks (0: the tiled form; n > 0: the CPU form, n tiles a work-item, ry then 1).
<%
    E = ctype(dtype)
    T = {2: "unsigned short", 4: "unsigned int", 8: "double"}[dtype.itemsize]
    RY = ry
    STEPS = t // ry
%>
% if blocks:
KERNEL REQD_WORK_GROUP_SIZE(1, 1, 1)
void transpose(
    GLOBAL_MEM ${E}* RESTRICT dst_elements,
    GLOBAL_MEM const ${E}* RESTRICT src_elements,
    const index_t R, const index_t S,
    const index_t stride_src, const index_t stride_dst)
{
    GLOBAL_MEM ${T}* dst = (GLOBAL_MEM ${T}*)dst_elements + GROUP_ID(2) * stride_dst;
    GLOBAL_MEM const ${T}* src = (GLOBAL_MEM const ${T}*)src_elements + GROUP_ID(2) * stride_src;
    // a strip of ${blocks} tiles along S: fewer, longer work-items (CPU runtimes pay per work-group)
    const index_t r0 = GROUP_ID(1) * ${t};
    const index_t r1 = MIN(r0 + ${t}, R);
    for (index_t s0 = GROUP_ID(0) * ${t * blocks}; s0 < MIN(GROUP_ID(0) * ${t * blocks} + ${t * blocks}, S); s0 += ${t}) {
        const index_t s1 = MIN(s0 + ${t}, S);
        if (r1 - r0 == ${t} && s1 - s0 == ${t}) {
            // a whole tile: fixed trip counts, which the compiler unrolls and vectorises
            for (index_t s = 0; s < ${t}; ++s) {
                GLOBAL_MEM ${T}* out = dst + (s0 + s) * R + r0;
                GLOBAL_MEM const ${T}* in = src + r0 * S + s0 + s;
                #pragma unroll
                for (index_t r = 0; r < ${t}; ++r)
                    out[r] = in[r * S];
            }
        } else {
            for (index_t s = s0; s < s1; ++s)
                for (index_t r = r0; r < r1; ++r)
                    dst[s * R + r] = src[r * S + s];
        }
    }
}
% else:
KERNEL void transpose(
    GLOBAL_MEM ${E}* RESTRICT dst_elements,
    GLOBAL_MEM const ${E}* RESTRICT src_elements,
    const index_t R, const index_t S,
    const index_t stride_src, const index_t stride_dst)
{
    GLOBAL_MEM ${T}* dst = (GLOBAL_MEM ${T}*)dst_elements;
    GLOBAL_MEM const ${T}* src = (GLOBAL_MEM const ${T}*)src_elements;
    // +1 column: the tile's columns fall in different banks (GPUs) when read back transposed
    LOCAL_MEM ${T} tile[${t}][${t} + 1];
    const index_t tx = LOCAL_ID(0);
    const index_t ty = LOCAL_ID(1);
    const index_t batch = GROUP_ID(2);
    src += batch * stride_src;
    dst += batch * stride_dst;
    const index_t r0 = GROUP_ID(1) * ${t};
    const index_t s0 = GROUP_ID(0) * ${t};
    #pragma unroll
    for (index_t i = 0; i < ${STEPS}; ++i) {
        const index_t r = r0 + ty + i * ${RY};
        const index_t s = s0 + tx;
        if (r < R && s < S)
            tile[ty + i * ${RY}][tx] = src[r * S + s];
    }
    // every work-item of the group reaches this barrier: nothing returns early
    LOCAL_BARRIER;
    #pragma unroll
    for (index_t i = 0; i < ${STEPS}; ++i) {
        const index_t s = s0 + ty + i * ${RY};
        const index_t r = r0 + tx;
        if (r < R && s < S)
            dst[s * R + r] = tile[tx][ty + i * ${RY}];
    }
}
% endif
