## Every vector word of docs/templates.md: loads, stores, lanes, arithmetic (words and operators), sums.
KERNEL void vector_words(GLOBAL_MEM ${T}* RESTRICT out, GLOBAL_MEM const ${T}* RESTRICT a,
                         GLOBAL_MEM const ${T}* RESTRICT b, const index_t groups)
{
    const index_t g = GLOBAL_ID(0);
    if (g < groups) {
        const VEC(${L}, ${N}) x = VLOAD(${N}, a, g * ${N});
        const VEC(${L}, ${N}) y = VLOAD(${N}, b, g * ${N});
        VEC(${L}, ${N}) s = VADD(x, y);                      // x + y
        s = VSUB(s, VMUL(x, VSPLAT(${L}, ${N}, 2)));         // y - x
        s = s + y * (${T})3 - x;                             // 4y - 2x
        s += VSPLAT(${L}, ${N}, 1);                          // 4y - 2x + 1
% if T in ("float", "double"):
        s = VDIV(VFMA(s, VSPLAT(${L}, ${N}, 2), x), VSPLAT(${L}, ${N}, 4));  // (2s + x) / 4
% else:
        s = VDIV(s, VSPLAT(${L}, ${N}, 2));
% endif
        VSET(s, 1, VGET(s, 0) + VGET(x, ${N} - 1));
        VSTORE(${N}, s, out, g * (${N} + 2));
        out[g * (${N} + 2) + ${N}] = VSUM(s);
        out[g * (${N} + 2) + ${N} + 1] = VDOT(x, y);
    }
}

KERNEL void half_vectors(GLOBAL_MEM half_t* RESTRICT out, GLOBAL_MEM const half_t* RESTRICT a,
                         const index_t groups)
{
    const index_t g = GLOBAL_ID(0);
    if (g < groups) {
        const VEC(float, ${N}) x = VLOAD_HALF(${N}, a, g * ${N});
        VSTORE_HALF(${N}, VADD(x, x), out, g * ${N});
    }
}
