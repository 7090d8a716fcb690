## Test-only kernels with planted bugs, for the Oclgrind memory checker.
KERNEL void fill_oob(GLOBAL_MEM float* out, const index_t n) {
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        out[i + 1] = (float)i;  // planted: the last work-item writes one past the end
    }
}

KERNEL void local_race(GLOBAL_MEM float* out, const index_t n) {
    LOCAL_MEM float slot[1];
    slot[0] = (float)LOCAL_ID(0);  // planted: every work-item writes the same local slot
    LOCAL_BARRIER;
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        out[i] = slot[0];
    }
}

KERNEL void fill_ok(GLOBAL_MEM float* out, const index_t n) {
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        out[i] = (float)i;
    }
}
