## Kernels that measure a device's float16 and int8 arithmetic ceilings (xgpu bench device).
##
## Defines: chains (independent chains per work-item: enough to hide latency on GPUs, and independent
## across work-items so that CPU runtimes vectorise them); half_arith (True: the chains compute in
## float16, rendered only for devices whose extension list has cl_khr_fp16; False: float16 storage,
## computed in float32); dot4 ("builtin": the packed int8 dot product of cl_khr_integer_dot_product,
## rendered only for devices that list it; "portable": the same dot product spelt out in 32-bit integer
## arithmetic, which any compiler may turn into its own byte instructions).

## Each chain is x = x * a + b (2 FLOP a step, contracted to an FMA where the compiler likes); x stays
## near b / (1 - a), so it neither overflows float16 nor goes subnormal.
KERNEL void half_peak(GLOBAL_MEM half_t* RESTRICT out, const float a, const float b, const int iterations)
{
    const index_t gid = GLOBAL_ID(0);
% if half_arith:
    const half_t ha = (half_t)a, hb = (half_t)b;
% for c in range(chains):
    half_t x${c} = (half_t)((float)((gid + ${c}) % 1024) * 1e-4f);
% endfor
    for (int i = 0; i < iterations; ++i) {
% for c in range(chains):
        x${c} = x${c} * ha + hb;
% endfor
    }
    STORE_HALF(out, gid, ${" + ".join(f"(float)x{c}" for c in range(chains))});
% else:
% for c in range(chains):
    float x${c} = (float)((gid + ${c}) % 1024) * 1e-4f;
% endfor
    for (int i = 0; i < iterations; ++i) {
% for c in range(chains):
        x${c} = FMA(x${c}, a, b);
% endfor
    }
    STORE_HALF(out, gid, ${" + ".join(f"x{c}" for c in range(chains))});
% endif
}

## acc + the dot product of the four signed bytes of a with those of b: 4 multiplies and 4 adds, the 8
## operations a packed int8 dot-product instruction (dp4a and its kind) counts.
DEVICE_FN int bench_dot4(const int a, const int b, const int acc)
{
% if dot4 == "builtin":
    return acc + dot_4x8packed_ss_int((uint)a, (uint)b);
% else:
    return acc + ((int)((uint)a << 24) >> 24) * ((int)((uint)b << 24) >> 24)
               + ((int)((uint)a << 16) >> 24) * ((int)((uint)b << 16) >> 24)
               + ((int)((uint)a << 8) >> 24) * ((int)((uint)b << 8) >> 24)
               + (a >> 24) * (b >> 24);
% endif
}

## Each chain is x = b + dot4(bytes of x, bytes of w): a dependent chain no compiler can hoist; |x| stays
## under 4 * 128 * 128 + |b|, so nothing overflows.
KERNEL void int8_peak(GLOBAL_MEM int* RESTRICT out, const int w, const int b, const int iterations)
{
    const index_t gid = GLOBAL_ID(0);
% for c in range(chains):
    int x${c} = (int)((gid + ${c}) % 4096) * 40503;
% endfor
    for (int i = 0; i < iterations; ++i) {
% for c in range(chains):
        x${c} = bench_dot4(x${c}, w, b);
% endfor
    }
    out[gid] = ${" + ".join(f"x{c}" for c in range(chains))};
}
