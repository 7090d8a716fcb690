## Every atomic word under contention: n work-items hit ${cells} cells, each cell holding one slot per
## operation; ticket slots (ATOMIC_ADD of 1) check the returned old values, a counter built on ATOMIC_CAS
## checks CAS. Once on global memory, once on local memory (a copy per work-group).
<%
    integer = T not in ("float", "double")
    ops = ["ADD", "SUB", "MIN", "MAX", "AND", "OR", "XOR", "XCHG"] if integer else ["ADD", "MIN", "MAX", "XCHG"]
    slots = len(ops) + 2  # + ticket, + CAS counter
%>
<%def name="hit(space, cell)">
        const ${T} v = vals[i];
% for k, op in enumerate(ops):
        olds[i * ${slots} + ${k}] = ATOMIC_${op}(${cell} + ${k}, v);
% endfor
        olds[i * ${slots} + ${len(ops)}] = ATOMIC_ADD(${cell} + ${len(ops)}, (${T})1);
        {
            ${space} ${T}* counter = ${cell} + ${len(ops) + 1};
            ${T} seen = 0, before;  // the first ATOMIC_CAS reads the counter
            do {
                before = seen;
                seen = ATOMIC_CAS(counter, before, (${T})(before + 1));
            } while (seen != before);
            olds[i * ${slots} + ${len(ops) + 1}] = before;
        }
</%def>

KERNEL void atomics_global(GLOBAL_MEM ${T}* RESTRICT cells, GLOBAL_MEM ${T}* RESTRICT olds,
                           GLOBAL_MEM const ${T}* RESTRICT vals, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
${hit("GLOBAL_MEM", f"(cells + (i % {cells}) * {slots})")}
    }
}

KERNEL void atomics_local(GLOBAL_MEM ${T}* RESTRICT out, GLOBAL_MEM ${T}* RESTRICT olds,
                          GLOBAL_MEM const ${T}* RESTRICT vals, GLOBAL_MEM const ${T}* RESTRICT init,
                          const index_t n)
{
    LOCAL_MEM ${T} cells[${cells * slots}];
    const index_t i = GLOBAL_ID(0);
    for (index_t c = LOCAL_ID(0); c < ${cells * slots}; c += LOCAL_SIZE(0))
        cells[c] = init[c];
    LOCAL_BARRIER;
    if (i < n) {
${hit("LOCAL_MEM_ARG", f"(cells + (i % {cells}) * {slots})")}
    }
    LOCAL_BARRIER;
    for (index_t c = LOCAL_ID(0); c < ${cells * slots}; c += LOCAL_SIZE(0))
        out[GROUP_ID(0) * ${cells * slots} + c] = cells[c];
}

## The everyday use: a histogram of bytes, in local memory per work-group, then summed into global memory.
KERNEL void histogram(GLOBAL_MEM ${T}* RESTRICT hist, GLOBAL_MEM const unsigned char* RESTRICT data, const index_t n)
{
    LOCAL_MEM ${T} local_hist[${bins}];
    for (index_t b = LOCAL_ID(0); b < ${bins}; b += LOCAL_SIZE(0))
        local_hist[b] = 0;
    LOCAL_BARRIER;
    for (index_t i = GLOBAL_ID(0); i < n; i += GLOBAL_SIZE(0))
        ATOMIC_ADD(&local_hist[data[i] % ${bins}], (${T})1);
    LOCAL_BARRIER;
    for (index_t b = LOCAL_ID(0); b < ${bins}; b += LOCAL_SIZE(0))
        if (local_hist[b] != 0)
            ATOMIC_ADD(&hist[b], local_hist[b]);
}
