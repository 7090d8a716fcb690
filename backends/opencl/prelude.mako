## The OpenCL C meaning of every neutral template word (see docs/templates.md).
#if defined(cl_khr_fp64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#if defined(cl_khr_fp16)
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

#define KERNEL __kernel
#define DEVICE_FN static inline
#define INLINE inline
#define GLOBAL_MEM __global
#define LOCAL_MEM __local
#define LOCAL_MEM_ARG __local
#define CONSTANT_MEM __constant
#define RESTRICT restrict

#define LOCAL_BARRIER barrier(CLK_LOCAL_MEM_FENCE)
#define GLOBAL_BARRIER barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE)
#define MEM_FENCE mem_fence(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE)
#define REQD_WORK_GROUP_SIZE(x, y, z) __attribute__((reqd_work_group_size(x, y, z)))

// Launch-sized local memory: LOCAL_MEM_DYNAMIC(T, name); in a kernel body names an array whose size the
// launch gives (local_mem={"name": nbytes}); rendering adds LOCAL_MEM_DYNAMIC_PARAM(T, name) to the kernel's
// parameters, a __local pointer that xgpu sets with the launch (clSetKernelArg with a size and no value).
#define LOCAL_MEM_DYNAMIC(T, name)
#define LOCAL_MEM_DYNAMIC_PARAM(T, name) __local T* restrict name

// Subgroups: Intel's (cl_intel_subgroups) where the device has them (decided when rendering for the
// device: some compilers define the extension's macro for devices that lack it, Oclgrind for one);
// elsewhere, or rendered with subgroups="emulated", emulated through local memory (see below).
#if defined(XGPU_SUBGROUPS_NATIVE)
#define XGPU_NATIVE_SUBGROUPS 1
#if defined(XGPU_SUBGROUP_SIZE)
#undef KERNEL
#define KERNEL __kernel __attribute__((intel_reqd_sub_group_size(XGPU_SUBGROUP_SIZE)))
#endif
#define SUBGROUP_SIZE ((index_t)get_sub_group_size())
#define SUBGROUP_LOCAL_ID ((index_t)get_sub_group_local_id())
#define SUBGROUP_ID ((index_t)get_sub_group_id())
#define SUBGROUP_SHUFFLE(x, i) intel_sub_group_shuffle((x), (uint)(i))
#define SUBGROUP_BROADCAST(x, i) sub_group_broadcast((x), (uint)(i))
#define SUBGROUP_REDUCE_ADD(x) sub_group_reduce_add(x)
#define SUBGROUP_REDUCE_MIN(x) sub_group_reduce_min(x)
#define SUBGROUP_REDUCE_MAX(x) sub_group_reduce_max(x)
#define SUBGROUP_BARRIER sub_group_barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#endif
#if defined(cl_khr_int64_base_atomics)
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
#endif
#if defined(cl_khr_int64_extended_atomics)
#pragma OPENCL EXTENSION cl_khr_int64_extended_atomics : enable
#endif

#define XGPU_OPENCL 1
#define XGPU_OVERLOAD __attribute__((overloadable))

// 64-bit integers: OpenCL C's long is 64-bit on every device
typedef long int64_t;
typedef unsigned long uint64_t;
// numpy's bool: one byte holding 0 or 1 (OpenCL C's bool cannot cross the kernel boundary)
typedef unsigned char bool_t;

// index_t: 32-bit unless the template was rendered with index_bits=64 (or a launch needed it)
#if XGPU_INDEX_BITS == 64
typedef long index_t;
typedef unsigned long uindex_t;
#else
typedef int index_t;
typedef unsigned int uindex_t;
#endif
typedef half half_t;
// hfloat_t: half-precision arithmetic where the device has it (cl_khr_fp16: decided when rendering for the
// device, or by the compiler's macro when rendering with no device), float elsewhere
#if defined(XGPU_HALF_ARITHMETIC_AUTO) && defined(cl_khr_fp16)
#define XGPU_HALF_ARITHMETIC 1
#endif
#if defined(XGPU_HALF_ARITHMETIC)
typedef half hfloat_t;
#else
typedef float hfloat_t;
#endif
// bfloat16: the top 16 bits of a float; stored as ushort, converted with integer operations on every device
typedef ushort bfloat16_t;

#define GLOBAL_ID(d) ((index_t)get_global_id(d))
#define LOCAL_ID(d) ((index_t)get_local_id(d))
#define GROUP_ID(d) ((index_t)get_group_id(d))
#define LOCAL_SIZE(d) ((index_t)get_local_size(d))
#define NUM_GROUPS(d) ((index_t)get_num_groups(d))
#define GLOBAL_SIZE(d) ((index_t)get_global_size(d))

// Subgroups emulated through local memory: lanes are consecutive linear local ids, XGPU_SUBGROUPS_EMULATED
// of them (the last subgroup of a work-group may be smaller). Values are exchanged through the kernel's
// hidden local array xgpu_subgroup_scratch (8 bytes a work-item), between two work-group barriers: every
// work-item of the work-group must reach each of these words (uniform control flow), and they work only
// in a kernel's body (the render refuses them in a DEVICE_FN).
#if defined(XGPU_SUBGROUPS_EMULATED)
#define XGPU_LINEAR_LOCAL_ID ((index_t)(get_local_id(0) + get_local_size(0) * (get_local_id(1) + get_local_size(1) * get_local_id(2))))
#define XGPU_LINEAR_LOCAL_SIZE ((index_t)(get_local_size(0) * get_local_size(1) * get_local_size(2)))
#define SUBGROUP_ID (XGPU_LINEAR_LOCAL_ID / XGPU_SUBGROUPS_EMULATED)
#define SUBGROUP_LOCAL_ID (XGPU_LINEAR_LOCAL_ID % XGPU_SUBGROUPS_EMULATED)
#define SUBGROUP_SIZE min((index_t)XGPU_SUBGROUPS_EMULATED, XGPU_LINEAR_LOCAL_SIZE - SUBGROUP_ID * XGPU_SUBGROUPS_EMULATED)
#define SUBGROUP_SHUFFLE(x, i) xgpu_sg_shuffle(xgpu_subgroup_scratch, (x), (index_t)(i))
#define SUBGROUP_BROADCAST(x, i) xgpu_sg_shuffle(xgpu_subgroup_scratch, (x), (index_t)(i))
#define SUBGROUP_REDUCE_ADD(x) xgpu_sg_reduce_add(xgpu_subgroup_scratch, (x))
#define SUBGROUP_REDUCE_MIN(x) xgpu_sg_reduce_min(xgpu_subgroup_scratch, (x))
#define SUBGROUP_REDUCE_MAX(x) xgpu_sg_reduce_max(xgpu_subgroup_scratch, (x))
#define SUBGROUP_BARRIER barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
% for T in ("int", "uint", "long", "ulong", "float", "double"):
% if T == "double":
#if defined(cl_khr_fp64)
% endif
// x of lane i of this subgroup (i taken modulo the subgroup's size, as CUDA's __shfl_sync does)
XGPU_OVERLOAD static inline ${T} xgpu_sg_shuffle(__local ulong* scratch, ${T} x, index_t i)
{
    __local ${T}* lane = (__local ${T}*)scratch;
    const index_t me = XGPU_LINEAR_LOCAL_ID, first = me - me % XGPU_SUBGROUPS_EMULATED;
    barrier(CLK_LOCAL_MEM_FENCE);  // the last word's readers are done with the scratch
    lane[me] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    return lane[first + (index_t)((uindex_t)i % (uindex_t)SUBGROUP_SIZE)];
}
% for op, expr in (("add", "r + v"), ("min", "(v < r ? v : r)"), ("max", "(v > r ? v : r)")):
// over the subgroup's lanes in the order 0, 1, ..., the same result in every lane
XGPU_OVERLOAD static inline ${T} xgpu_sg_reduce_${op}(__local ulong* scratch, ${T} x)
{
    __local ${T}* lane = (__local ${T}*)scratch;
    const index_t me = XGPU_LINEAR_LOCAL_ID, first = me - me % XGPU_SUBGROUPS_EMULATED, size = SUBGROUP_SIZE;
    barrier(CLK_LOCAL_MEM_FENCE);
    lane[me] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    ${T} r = lane[first];
    for (index_t k = 1; k < size; ++k) { const ${T} v = lane[first + k]; r = ${expr}; }
    return r;
}
% endfor
% if T == "double":
#endif
% endif
% endfor
#endif

#define LOAD_HALF(ptr, i) vload_half((i), (ptr))
#define STORE_HALF(ptr, i, value) vstore_half_rte((value), (i), (ptr))

// bfloat16 <-> float: widening is exact (the bits shifted up); narrowing rounds to nearest even, and a NaN
// becomes the quiet NaN 0x7fc0 with its sign (as ml_dtypes and Eigen convert)
static inline float xgpu_bf16_to_float(const ushort h) { return as_float((uint)h << 16); }
static inline ushort xgpu_float_to_bf16(const float f)
{
    const uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ushort)(((u >> 16) & 0x8000u) | 0x7fc0u);
    return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
#define LOAD_BF16(ptr, i) xgpu_bf16_to_float((ptr)[(i)])
#define STORE_BF16(ptr, i, value) ((ptr)[(i)] = xgpu_float_to_bf16(value))
% for N in (2, 4, 8, 16):
XGPU_OVERLOAD static inline float${N} xgpu_bf16_to_float${N}(const ushort${N} h)
{ return as_float${N}(convert_uint${N}(h) << (uint${N})16); }
XGPU_OVERLOAD static inline ushort${N} xgpu_float_to_bf16_${N}(const float${N} f)
{
    const uint${N} u = as_uint${N}(f);
    const uint${N} rounded = (u + (uint${N})0x7fffu + ((u >> 16) & (uint${N})1u)) >> 16;
    const uint${N} quiet = ((u >> 16) & (uint${N})0x8000u) | (uint${N})0x7fc0u;
    return convert_ushort${N}(select(rounded, quiet, (u & (uint${N})0x7fffffffu) > (uint${N})0x7f800000u));
}
% endfor

#define FMA fma
#define SQRT sqrt
#define RSQRT rsqrt
#define EXP exp
#define LOG log
#define FABS fabs
#define FMIN fmin
#define FMAX fmax
#define MIN min
#define MAX max

// short vectors of N = 2, 4, 8 or 16 lanes of float, double, int or uint: OpenCL's own vector types.
// Lanes are reached only through VGET/VSET (the render refuses .s0, .xyzw: CUDA has no such syntax).
#define VEC(T, N) T##N
#define VLOAD(N, ptr, i) vload##N(0, (ptr) + (i))
#define VSTORE(N, value, ptr, i) vstore##N((value), 0, (ptr) + (i))
#define VLOAD_HALF(N, ptr, i) vload_half##N(0, (ptr) + (i))
#define VSTORE_HALF(N, value, ptr, i) vstore_half##N##_rte((value), 0, (ptr) + (i))
#define VLOAD_BF16(N, ptr, i) xgpu_bf16_to_float##N(vload##N(0, (ptr) + (i)))
#define VSTORE_BF16(N, value, ptr, i) vstore##N(xgpu_float_to_bf16_##N(value), 0, (ptr) + (i))
#define VSPLAT(T, N, s) ((T##N)(s))
#define VGET(v, i) ((v)[(i)])
#define VSET(v, i, x) ((v)[(i)] = (x))
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VDIV(a, b) ((a) / (b))
#define VFMA(a, b, c) fma((a), (b), (c))
#define VSUM(v) xgpu_vsum(v)
#define VDOT(a, b) xgpu_vdot((a), (b))
// VLOAD_WIDEN(T, N, ptr, i): N 8- or 16-bit integers at ptr + i, sign- or zero-extended (by the pointer's
// type) to a VEC(T, N) of int or uint (uint lanes hold the int's bits)
#define VLOAD_WIDEN(T, N, ptr, i) xgpu_widen_##T##N(vload##N(0, (ptr) + (i)))
// VEC(hfloat, N): N lanes of hfloat_t, so halfN where hfloat_t is half and floatN elsewhere (the same choice);
// VLOAD_HFLOAT / VSTORE_HFLOAT move them from and to half_t storage (rounded to nearest even into float16)
% for N in (2, 4, 8, 16):
#if defined(XGPU_HALF_ARITHMETIC)
typedef half${N} hfloat${N};
#else
typedef float${N} hfloat${N};
#endif
% endfor
#if defined(XGPU_HALF_ARITHMETIC)
#define VLOAD_HFLOAT(N, ptr, i) vload##N(0, (ptr) + (i))
#define VSTORE_HFLOAT(N, value, ptr, i) vstore##N((value), 0, (ptr) + (i))
#else
#define VLOAD_HFLOAT(N, ptr, i) vload_half##N(0, (ptr) + (i))
#define VSTORE_HFLOAT(N, value, ptr, i) vstore_half##N##_rte((value), 0, (ptr) + (i))
#endif
% for N in (2, 4, 8, 16):
% for S in ("char", "uchar", "short", "ushort"):
XGPU_OVERLOAD static inline int${N} xgpu_widen_int${N}(const ${S}${N} v) { return convert_int${N}(v); }
XGPU_OVERLOAD static inline uint${N} xgpu_widen_uint${N}(const ${S}${N} v) { return as_uint${N}(convert_int${N}(v)); }
% endfor
% endfor
% for T in ("float", "double", "half", "int", "uint"):
% if T == "double":
#if defined(cl_khr_fp64)
% elif T == "half":
#if defined(XGPU_HALF_ARITHMETIC)
% endif
% for N in (2, 4, 8, 16):
// lanes summed in order 0, 1, ..., N-1 on every backend, so results agree bit for bit
XGPU_OVERLOAD static inline ${T} xgpu_vsum(const ${T}${N} v)
{ ${T} s = v[0]; for (int e = 1; e < ${N}; ++e) s += v[e]; return s; }
XGPU_OVERLOAD static inline ${T} xgpu_vdot(const ${T}${N} a, const ${T}${N} b)
% if T in ("float", "double", "half"):
{ ${T} s = a[0] * b[0]; for (int e = 1; e < ${N}; ++e) s = fma(a[e], b[e], s); return s; }
% else:
{ ${T} s = a[0] * b[0]; for (int e = 1; e < ${N}; ++e) s += a[e] * b[e]; return s; }
% endif
% endfor
% if T in ("double", "half"):
#endif
% endif
% endfor

// Atomics on global and local memory, returning the old value; memory order relaxed (no ordering of
// other accesses: put a barrier or fence between phases). Native OpenCL 1.1 atomics for 32-bit
// integers, cl_khr_int64_*_atomics for 64-bit ones; float and double through a compare-and-swap loop
// (xgpu compiles OpenCL C 1.2, where cl_ext_float_atomics has no functions). Rendered with
// atomics="emulated", every operation but CAS itself goes through the loop (to test the fallback).
#define ATOMIC_ADD(p, v) xgpu_atomic_add((p), (v))
#define ATOMIC_SUB(p, v) xgpu_atomic_sub((p), (v))
#define ATOMIC_MIN(p, v) xgpu_atomic_min((p), (v))
#define ATOMIC_MAX(p, v) xgpu_atomic_max((p), (v))
#define ATOMIC_AND(p, v) xgpu_atomic_and((p), (v))
#define ATOMIC_OR(p, v) xgpu_atomic_or((p), (v))
#define ATOMIC_XOR(p, v) xgpu_atomic_xor((p), (v))
#define ATOMIC_XCHG(p, v) xgpu_atomic_xchg((p), (v))
#define ATOMIC_CAS(p, expected, desired) xgpu_atomic_cas((p), (expected), (desired))
<%
    # (type, bits type for the CAS, CAS function, reinterpret to bits, back, guard, unavailable message)
    i64_missing = "64-bit integer atomics need cl_khr_int64_base_atomics"
    types = [
        ("int", "int", "atomic_cmpxchg", "", "", None),
        ("uint", "uint", "atomic_cmpxchg", "", "", None),
        ("long", "ulong", "atom_cmpxchg", "as_ulong", "as_long", "cl_khr_int64_base_atomics"),
        ("ulong", "ulong", "atom_cmpxchg", "", "", "cl_khr_int64_base_atomics"),
        ("float", "uint", "atomic_cmpxchg", "as_uint", "as_float", None),
        ("double", "ulong", "atom_cmpxchg", "as_ulong", "as_double", "XGPU_DOUBLE_ATOMICS"),
    ]
    ops = {"add": "old + v", "sub": "old - v", "min": "(v < old ? v : old)", "max": "(v > old ? v : old)",
           "and": "old & v", "or": "old | v", "xor": "old ^ v", "xchg": "v"}
    native = {  # the OpenCL built-in of each operation, where there is one
        "int": dict(add="atomic_add", sub="atomic_sub", min="atomic_min", max="atomic_max", and_="atomic_and",
                    or_="atomic_or", xor="atomic_xor", xchg="atomic_xchg"),
        "long": dict(add="atom_add", sub="atom_sub", xchg="atom_xchg"),
        "long_ext": dict(min="atom_min", max="atom_max", and_="atom_and", or_="atom_or", xor="atom_xor"),
        "float": dict(xchg="atomic_xchg"),
    }
%>
#if defined(cl_khr_fp64) && defined(cl_khr_int64_base_atomics)
#define XGPU_DOUBLE_ATOMICS 1
#endif
% for T, B, cas, to_bits, from_bits, guard in types:
<%
    float_type = T in ("float", "double")
    fam = "int" if T in ("int", "uint") else "long" if T in ("long", "ulong") else "float" if T == "float" else "double"
%>\
% if guard:
#if defined(${guard})
% endif
% for space in ("__global", "__local"):
XGPU_OVERLOAD static inline ${T} xgpu_atomic_cas(volatile ${space} ${T}* p, ${T} expected, ${T} desired)
{ return ${from_bits}(${cas}((volatile ${space} ${B}*)p, ${to_bits}(expected), ${to_bits}(desired))); }
% for op, expr in ops.items():
<%
    if float_type and op not in ("add", "min", "max", "xchg"):
        continue
    key = op + "_" if op in ("and", "or") else op
    fn = native.get(fam, {}).get(key)
    ext_fn = native["long_ext"].get(key) if fam == "long" else None
%>\
XGPU_OVERLOAD static inline ${T} xgpu_atomic_${op}(volatile ${space} ${T}* p, ${T} v)
{
% if fn or ext_fn:
#if !defined(XGPU_ATOMICS_EMULATED)${" && defined(cl_khr_int64_extended_atomics)" if ext_fn else ""}
    return ${fn or ext_fn}(p, v);
#else
% endif
    ${T} old = ${from_bits}(${cas}((volatile ${space} ${B}*)p, 0, 0));  // an atomic read: no race with the others
    for (;;) {
        const ${T} want = ${expr};
        const ${B} seen = ${cas}((volatile ${space} ${B}*)p, ${to_bits}(old), ${to_bits}(want));
        if (seen == ${to_bits}(old)) return old;
        old = ${from_bits}(seen);
    }
% if fn or ext_fn:
#endif
% endif
}
% endfor
% endfor
% if guard:
${"#elif defined(cl_khr_fp64)" if T == "double" else "#else"}
% for op in list(ops) + ["cas"]:
% if not (float_type and op not in ("add", "min", "max", "xchg", "cas")):
% for space in ("__global", "__local"):
XGPU_OVERLOAD ${T} xgpu_atomic_${op}(volatile ${space} ${T}* p, ${T} v${", " + T + " d" if op == "cas" else ""})
    __attribute__((unavailable("ATOMIC_${op.upper()} on ${"int64_t" if T == "long" else "uint64_t" if T == "ulong" else T}: ${"double atomics need cl_khr_fp64 and cl_khr_int64_base_atomics" if T == "double" else i64_missing}, which this device lacks")));
% endfor
% endif
% endfor
#endif
% endif
% endfor

// Complex numbers: numpy's complex64/complex128 layout (real, imaginary)
#define PRINTF printf
struct xgpu_cfloat { float re, im; };
typedef struct xgpu_cfloat cfloat_t;
#if defined(cl_khr_fp64)
struct xgpu_cdouble { double re, im; };
typedef struct xgpu_cdouble cdouble_t;
#endif
#define CMAKE(T, re, im) xgpu_cmake_##T((re), (im))
#define CREAL(z) ((z).re)
#define CIMAG(z) ((z).im)
#define CADD(a, b) xgpu_cadd((a), (b))
#define CSUB(a, b) xgpu_csub((a), (b))
#define CMUL(a, b) xgpu_cmul((a), (b))
#define CCONJ(z) xgpu_cconj(z)
#define CABS(z) xgpu_cabs(z)
#define CEXP(z) xgpu_cexp(z)
% for C, T in (("cfloat_t", "float"), ("cdouble_t", "double")):
% if T == "double":
#if defined(cl_khr_fp64)
% endif
static inline ${C} xgpu_cmake_${C}(${T} re, ${T} im) { ${C} z; z.re = re; z.im = im; return z; }
XGPU_OVERLOAD static inline ${C} xgpu_cadd(${C} a, ${C} b) { return xgpu_cmake_${C}(a.re + b.re, a.im + b.im); }
XGPU_OVERLOAD static inline ${C} xgpu_csub(${C} a, ${C} b) { return xgpu_cmake_${C}(a.re - b.re, a.im - b.im); }
XGPU_OVERLOAD static inline ${C} xgpu_cmul(${C} a, ${C} b)
{ return xgpu_cmake_${C}(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re); }
XGPU_OVERLOAD static inline ${C} xgpu_cconj(${C} z) { return xgpu_cmake_${C}(z.re, -z.im); }
XGPU_OVERLOAD static inline ${T} xgpu_cabs(${C} z) { return hypot(z.re, z.im); }
XGPU_OVERLOAD static inline ${C} xgpu_cexp(${C} z)
{ const ${T} m = exp(z.re); return xgpu_cmake_${C}(m * cos(z.im), m * sin(z.im)); }
% if T == "double":
#endif
% endif
% endfor

