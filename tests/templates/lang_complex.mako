## Complex numbers and the integer helpers that share their OpenCL names on every backend.
KERNEL void complex_words(GLOBAL_MEM ${C}* RESTRICT out, GLOBAL_MEM const ${C}* RESTRICT a,
                          GLOBAL_MEM const ${C}* RESTRICT b, GLOBAL_MEM ${T}* RESTRICT mag, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        const ${C} x = a[i], y = b[i];
        out[i * 4 + 0] = CADD(x, y);
        out[i * 4 + 1] = CMUL(x, CCONJ(y));
        out[i * 4 + 2] = CEXP(CMAKE(${C}, CREAL(x) * (${T})0.5, CIMAG(x)));
        out[i * 4 + 3] = CSUB(x, y);
        mag[i] = CABS(y);
    }
}

KERNEL void int_helpers(GLOBAL_MEM unsigned int* RESTRICT out, GLOBAL_MEM const unsigned int* RESTRICT a,
                        const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        out[i * 4 + 0] = popcount(a[i]);
        out[i * 4 + 1] = clz(a[i] | 1u);
        out[i * 4 + 2] = mul_hi(a[i], 2654435761u);
        out[i * 4 + 3] = (unsigned int)abs((int)a[i]);
    }
}
