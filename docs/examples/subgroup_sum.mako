## A two-level reduction: each subgroup (warp) sums its values in registers, subgroup 0's partials
## meet in local memory, and one atomic per work-group adds the group's sum. Correct for any subgroup
## size, 1 included (devices without subgroups). Defines: T, wg (the work-group size).
KERNEL REQD_WORK_GROUP_SIZE(${wg}, 1, 1) void subgroup_sum(GLOBAL_MEM ${T}* RESTRICT total,
                                                          GLOBAL_MEM const ${T}* RESTRICT x, const index_t n)
{
    LOCAL_MEM ${T} partial[${wg}];  // one slot per subgroup: enough for subgroups of one work-item
    const index_t i = GLOBAL_ID(0);
    const ${T} mine = SUBGROUP_REDUCE_ADD(i < n ? x[i] : (${T})0);
    if (SUBGROUP_LOCAL_ID == 0)
        partial[SUBGROUP_ID] = mine;
    LOCAL_BARRIER;
    if (LOCAL_ID(0) == 0) {
        ${T} s = 0;
        for (index_t k = 0; k < (LOCAL_SIZE(0) + SUBGROUP_SIZE - 1) / SUBGROUP_SIZE; ++k)
            s += partial[k];
        ATOMIC_ADD(total, s);
    }
}
