## Subgroup words, the required work-group size and global barriers.
KERNEL REQD_WORK_GROUP_SIZE(${wg}, 1, 1) void subgroup_words(GLOBAL_MEM int* RESTRICT ids,
                                                            GLOBAL_MEM ${T}* RESTRICT got,
                                                            GLOBAL_MEM const ${T}* RESTRICT x)
{
    const index_t i = GLOBAL_ID(0);
    const ${T} v = x[i];
    ids[i * 4 + 0] = (int)SUBGROUP_SIZE;
    ids[i * 4 + 1] = (int)SUBGROUP_LOCAL_ID;
    ids[i * 4 + 2] = (int)SUBGROUP_ID;
    ids[i * 4 + 3] = (int)LOCAL_SIZE(0);
    got[i * 5 + 0] = SUBGROUP_SHUFFLE(v, (SUBGROUP_LOCAL_ID + 1) % SUBGROUP_SIZE);
    got[i * 5 + 1] = SUBGROUP_BROADCAST(v, 0);
    got[i * 5 + 2] = SUBGROUP_REDUCE_ADD(v);
    got[i * 5 + 3] = SUBGROUP_REDUCE_MIN(v);
    SUBGROUP_BARRIER;
    got[i * 5 + 4] = SUBGROUP_REDUCE_MAX(v);
}

## A two-level sum: subgroups, then the work-group through local memory, then the groups by an atomic.
KERNEL REQD_WORK_GROUP_SIZE(${wg}, 1, 1) void two_level_sum(GLOBAL_MEM ${T}* RESTRICT total,
                                                           GLOBAL_MEM const ${T}* RESTRICT x, const index_t n)
{
    LOCAL_MEM ${T} partial[${wg}];  // one per subgroup: ${wg} covers subgroups of one work-item
    const index_t i = GLOBAL_ID(0);
    const ${T} v = SUBGROUP_REDUCE_ADD(i < n ? x[i] : (${T})0);
    if (SUBGROUP_LOCAL_ID == 0)
        partial[SUBGROUP_ID] = v;
    LOCAL_BARRIER;
    if (LOCAL_ID(0) == 0) {
        ${T} s = 0;
        for (index_t k = 0; k < (LOCAL_SIZE(0) + SUBGROUP_SIZE - 1) / SUBGROUP_SIZE; ++k)
            s += partial[k];
        ATOMIC_ADD(total, s);
    }
}

## Work-items exchange values through global memory inside their work-group.
KERNEL void global_exchange(GLOBAL_MEM int* RESTRICT scratch, GLOBAL_MEM int* RESTRICT out, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    const index_t base = GROUP_ID(0) * LOCAL_SIZE(0);
    scratch[i] = (int)(i * 7 + 1);
    MEM_FENCE;
    GLOBAL_BARRIER;
    const index_t j = base + (LOCAL_ID(0) + 1) % LOCAL_SIZE(0);
    if (i < n)
        out[i] = scratch[j];
}
