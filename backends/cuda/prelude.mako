## The CUDA C meaning of every neutral template word (see docs/templates.md).
#define KERNEL extern "C" __global__
#define DEVICE_FN static __device__ inline
#define INLINE __forceinline__
#define GLOBAL_MEM
#define LOCAL_MEM __shared__
#define LOCAL_MEM_ARG
#define CONSTANT_MEM __constant__
#define RESTRICT __restrict__

#define LOCAL_BARRIER __syncthreads()
#define GLOBAL_BARRIER __syncthreads()
#define MEM_FENCE __threadfence()
#define REQD_WORK_GROUP_SIZE(x, y, z) __launch_bounds__((x) * (y) * (z))

#define XGPU_CUDA 1

// OpenCL C's INFINITY and NAN (float), which NVRTC does not define (it has no math.h)
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

// 64-bit integers: NVRTC has no <stdint.h>; nvcc brings the host's (where int64_t may be long, so
// the atomics below cast to the long long that CUDA's atomics take)
#if defined(__CUDACC_RTC__)
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif
// numpy's bool: one byte holding 0 or 1
typedef unsigned char bool_t;
typedef unsigned int uint;

// index_t: 32-bit unless the template was rendered with index_bits=64 (or a launch needed it)
#if XGPU_INDEX_BITS == 64
typedef long long index_t;
typedef unsigned long long uindex_t;
#else
typedef int index_t;
typedef unsigned int uindex_t;
#endif
typedef unsigned short half_t;
// bfloat16: the top 16 bits of a float, converted with integer operations (no cuda_bf16.h needed)
typedef unsigned short bfloat16_t;

static __device__ __forceinline__ index_t xgpu_local_id(int d)
{ return (index_t)(d == 0 ? threadIdx.x : d == 1 ? threadIdx.y : threadIdx.z); }
static __device__ __forceinline__ index_t xgpu_group_id(int d)
{ return (index_t)(d == 0 ? blockIdx.x : d == 1 ? blockIdx.y : blockIdx.z); }
static __device__ __forceinline__ index_t xgpu_local_size(int d)
{ return (index_t)(d == 0 ? blockDim.x : d == 1 ? blockDim.y : blockDim.z); }
static __device__ __forceinline__ index_t xgpu_num_groups(int d)
{ return (index_t)(d == 0 ? gridDim.x : d == 1 ? gridDim.y : gridDim.z); }

// Launch-sized local memory: every LOCAL_MEM_DYNAMIC array of a kernel is carved from the block's one
// dynamic shared-memory buffer, at an offset (a multiple of 16 bytes) that xgpu passes as the hidden
// parameter rendering adds for it (LOCAL_MEM_DYNAMIC_PARAM), and the launch asks for their total.
extern __shared__ __align__(16) unsigned char xgpu_dynamic_local[];
#define LOCAL_MEM_DYNAMIC(T, name) T* const name = (T*)(xgpu_dynamic_local + xgpu_local_offset_##name)
#define LOCAL_MEM_DYNAMIC_PARAM(T, name) const unsigned int xgpu_local_offset_##name

// Subgroups are warps of 32 threads (the block's threads in x, then y, then z order); every thread of
// a warp must reach a subgroup word: give blocks a multiple of 32 threads. Rendered with
// subgroups="emulated", the local-memory emulation below (as on OpenCL devices without subgroups).
#define XGPU_LINEAR_LOCAL_ID (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z))
#if defined(XGPU_SUBGROUPS_NATIVE)
#define XGPU_NATIVE_SUBGROUPS 1
#define SUBGROUP_SIZE ((index_t)32)
#define SUBGROUP_LOCAL_ID ((index_t)(XGPU_LINEAR_LOCAL_ID % 32u))
#define SUBGROUP_ID ((index_t)(XGPU_LINEAR_LOCAL_ID / 32u))
#define SUBGROUP_SHUFFLE(x, i) __shfl_sync(0xffffffffu, (x), (int)(i))
#define SUBGROUP_BROADCAST(x, i) __shfl_sync(0xffffffffu, (x), (int)(i))
template <typename T> static __device__ __forceinline__ T xgpu_warp_add(T x)
{ _Pragma("unroll") for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o); return x; }
template <typename T> static __device__ __forceinline__ T xgpu_warp_min(T x)
{ _Pragma("unroll") for (int o = 16; o > 0; o >>= 1) { T y = __shfl_xor_sync(0xffffffffu, x, o); x = y < x ? y : x; } return x; }
template <typename T> static __device__ __forceinline__ T xgpu_warp_max(T x)
{ _Pragma("unroll") for (int o = 16; o > 0; o >>= 1) { T y = __shfl_xor_sync(0xffffffffu, x, o); x = y > x ? y : x; } return x; }
#define SUBGROUP_REDUCE_ADD(x) xgpu_warp_add(x)
#define SUBGROUP_REDUCE_MIN(x) xgpu_warp_min(x)
#define SUBGROUP_REDUCE_MAX(x) xgpu_warp_max(x)
#define SUBGROUP_BARRIER __syncwarp()
#else
// the same emulation as OpenCL's (backends/opencl/prelude.mako): values meet in the hidden shared array
// xgpu_subgroup_scratch between two __syncthreads(), so every thread of the block must reach each word
#define XGPU_LINEAR_LOCAL_SIZE ((index_t)(blockDim.x * blockDim.y * blockDim.z))
#define SUBGROUP_ID ((index_t)XGPU_LINEAR_LOCAL_ID / XGPU_SUBGROUPS_EMULATED)
#define SUBGROUP_LOCAL_ID ((index_t)XGPU_LINEAR_LOCAL_ID % XGPU_SUBGROUPS_EMULATED)
#define SUBGROUP_SIZE min((index_t)XGPU_SUBGROUPS_EMULATED, XGPU_LINEAR_LOCAL_SIZE - SUBGROUP_ID * XGPU_SUBGROUPS_EMULATED)
template <typename T> static __device__ __forceinline__ T xgpu_sg_shuffle(uint64_t* scratch, T x, index_t i)
{
    T* lane = (T*)scratch;
    const index_t me = XGPU_LINEAR_LOCAL_ID, first = me - me % XGPU_SUBGROUPS_EMULATED;
    __syncthreads();
    lane[me] = x;
    __syncthreads();
    return lane[first + (index_t)((uindex_t)i % (uindex_t)SUBGROUP_SIZE)];
}
% for op, expr in (("add", "r + v"), ("min", "(v < r ? v : r)"), ("max", "(v > r ? v : r)")):
template <typename T> static __device__ __forceinline__ T xgpu_sg_reduce_${op}(uint64_t* scratch, T x)
{
    T* lane = (T*)scratch;
    const index_t me = XGPU_LINEAR_LOCAL_ID, first = me - me % XGPU_SUBGROUPS_EMULATED, size = SUBGROUP_SIZE;
    __syncthreads();
    lane[me] = x;
    __syncthreads();
    T r = lane[first];
    for (index_t k = 1; k < size; ++k) { const T v = lane[first + k]; r = ${expr}; }
    return r;
}
% endfor
#define SUBGROUP_SHUFFLE(x, i) xgpu_sg_shuffle(xgpu_subgroup_scratch, (x), (index_t)(i))
#define SUBGROUP_BROADCAST(x, i) xgpu_sg_shuffle(xgpu_subgroup_scratch, (x), (index_t)(i))
#define SUBGROUP_REDUCE_ADD(x) xgpu_sg_reduce_add(xgpu_subgroup_scratch, (x))
#define SUBGROUP_REDUCE_MIN(x) xgpu_sg_reduce_min(xgpu_subgroup_scratch, (x))
#define SUBGROUP_REDUCE_MAX(x) xgpu_sg_reduce_max(xgpu_subgroup_scratch, (x))
#define SUBGROUP_BARRIER __syncthreads()
#endif

#define LOCAL_ID(d) xgpu_local_id(d)
#define GROUP_ID(d) xgpu_group_id(d)
#define LOCAL_SIZE(d) xgpu_local_size(d)
#define NUM_GROUPS(d) xgpu_num_groups(d)
#define GLOBAL_ID(d) (xgpu_group_id(d) * xgpu_local_size(d) + xgpu_local_id(d))
#define GLOBAL_SIZE(d) (xgpu_num_groups(d) * xgpu_local_size(d))

static __device__ __forceinline__ float xgpu_load_half(const half_t* p, index_t i)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}
static __device__ __forceinline__ void xgpu_store_half(half_t* p, index_t i, float v)
{
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p[i] = h;
}
// hfloat_t: half-precision arithmetic (sm_53 and later: PTX's f16 instructions, no cuda_fp16.h needed), a
// struct of the 16 bits with explicit conversions from and to float; float where rendered without it
#if defined(XGPU_HALF_ARITHMETIC_AUTO) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 530)
#define XGPU_HALF_ARITHMETIC 1
#endif
#if defined(XGPU_HALF_ARITHMETIC)
struct xgpu_hfloat {
    unsigned short bits;
    xgpu_hfloat() = default;
    __device__ __forceinline__ explicit xgpu_hfloat(const float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
    __device__ __forceinline__ explicit operator float() const
    { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits)); return f; }
};
typedef xgpu_hfloat hfloat_t;
% for op, ins in (("+", "add.rn.f16"), ("-", "sub.rn.f16"), ("*", "mul.rn.f16")):
static __device__ __forceinline__ xgpu_hfloat operator${op}(const xgpu_hfloat a, const xgpu_hfloat b)
{ xgpu_hfloat r; asm("${ins} %0, %1, %2;" : "=h"(r.bits) : "h"(a.bits), "h"(b.bits)); return r; }
static __device__ __forceinline__ xgpu_hfloat& operator${op}=(xgpu_hfloat& a, const xgpu_hfloat b) { a = a ${op} b; return a; }
% endfor
// float's quotient has enough bits that rounding it to half is the correctly rounded half quotient
static __device__ __forceinline__ xgpu_hfloat operator/(const xgpu_hfloat a, const xgpu_hfloat b)
{ return xgpu_hfloat((float)a / (float)b); }
static __device__ __forceinline__ xgpu_hfloat operator-(const xgpu_hfloat a)
{ xgpu_hfloat r; asm("neg.f16 %0, %1;" : "=h"(r.bits) : "h"(a.bits)); return r; }
% for op in ("<", ">", "<=", ">=", "==", "!="):
static __device__ __forceinline__ bool operator${op}(const xgpu_hfloat a, const xgpu_hfloat b) { return (float)a ${op} (float)b; }
% endfor
static __device__ __forceinline__ xgpu_hfloat fma(const xgpu_hfloat a, const xgpu_hfloat b, const xgpu_hfloat c)
{ xgpu_hfloat r; asm("fma.rn.f16 %0, %1, %2, %3;" : "=h"(r.bits) : "h"(a.bits), "h"(b.bits), "h"(c.bits)); return r; }
#else
typedef float hfloat_t;
#endif
#define LOAD_HALF(ptr, i) xgpu_load_half((ptr), (i))
#define STORE_HALF(ptr, i, value) xgpu_store_half((ptr), (i), (value))

// bfloat16 <-> float: widening is exact (the bits shifted up); narrowing rounds to nearest even, and a NaN
// becomes the quiet NaN 0x7fc0 with its sign (as ml_dtypes and Eigen convert)
static __device__ __forceinline__ float xgpu_bf16_to_float(const unsigned short h)
{ return __uint_as_float((unsigned int)h << 16); }
static __device__ __forceinline__ unsigned short xgpu_float_to_bf16(const float f)
{
    const unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (unsigned short)(((u >> 16) & 0x8000u) | 0x7fc0u);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
#define LOAD_BF16(ptr, i) xgpu_bf16_to_float((ptr)[(i)])
#define STORE_BF16(ptr, i, value) ((ptr)[(i)] = xgpu_float_to_bf16(value))

static __device__ __forceinline__ float xgpu_rsqrt(float x) { return rsqrtf(x); }
static __device__ __forceinline__ double xgpu_rsqrt(double x) { return rsqrt(x); }

#define FMA fma
#define SQRT sqrt
#define RSQRT xgpu_rsqrt
#define EXP exp
#define LOG log
#define FABS fabs
#define FMIN fmin
#define FMAX fmax
#define MIN min
#define MAX max

// short vectors of N = 2, 4, 8 or 16 lanes of float, double, int or uint: structs with OpenCL's
// operators (elementwise + - * /, with a scalar on either side; % & | ^ << >> ~ for integers), so that
// vector code written on OpenCL compiles here and gives the same results.
% for T in ("float", "double", "int", "uint"):
<% integer = T in ("int", "uint") %>\
% for N in (2, 4, 8, 16):
<% V = f"xgpu_{T}{N}"; F = "static __device__ __forceinline__" %>\
struct ${V} {
    ${T} xgpu_lane[${N}];
    __device__ __forceinline__ ${T}& operator[](int e) { return xgpu_lane[e]; }
    __device__ __forceinline__ const ${T}& operator[](int e) const { return xgpu_lane[e]; }
};
${F} ${V} xgpu_vload${N}(const ${T}* p)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = p[e]; return v; }
${F} void xgpu_vstore${N}(const ${V} v, ${T}* p)
{ _Pragma("unroll") for (int e = 0; e < ${N}; ++e) p[e] = v[e]; }
// VSPLAT's value converted as by a cast to the lane type, whatever its type
template <typename S> ${F} ${V} xgpu_vsplat_${T}${N}(const S x)
{ ${V} v; const ${T} y = (${T})x; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = y; return v; }
% if not integer:
${F} ${V} xgpu_vfma(const ${V} a, const ${V} b, const ${V} c)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = fma(a[e], b[e], c[e]); return v; }
% endif
// lanes summed in order 0, 1, ..., N-1 on every backend, so results agree bit for bit
${F} ${T} xgpu_vsum(const ${V} v)
{ ${T} s = v[0]; _Pragma("unroll") for (int e = 1; e < ${N}; ++e) s += v[e]; return s; }
${F} ${T} xgpu_vdot(const ${V} a, const ${V} b)
% if integer:
{ ${T} s = a[0] * b[0]; _Pragma("unroll") for (int e = 1; e < ${N}; ++e) s += a[e] * b[e]; return s; }
% else:
{ ${T} s = a[0] * b[0]; _Pragma("unroll") for (int e = 1; e < ${N}; ++e) s = fma(a[e], b[e], s); return s; }
% endif
% for op in (("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>") if integer else ("+", "-", "*", "/")):
${F} ${V} operator${op}(const ${V} a, const ${V} b)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = a[e] ${op} b[e]; return v; }
${F} ${V} operator${op}(const ${V} a, const ${T} b)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = a[e] ${op} b; return v; }
${F} ${V} operator${op}(const ${T} a, const ${V} b)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = a ${op} b[e]; return v; }
${F} ${V}& operator${op}=(${V}& a, const ${V} b) { a = a ${op} b; return a; }
${F} ${V}& operator${op}=(${V}& a, const ${T} b) { a = a ${op} b; return a; }
% endfor
${F} ${V} operator-(const ${V} a)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = -a[e]; return v; }
${F} ${V} operator+(const ${V} a) { return a; }
% if integer:
${F} ${V} operator~(const ${V} a)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = ~a[e]; return v; }
% endif
% endfor
% endfor
% for N in (2, 4, 8, 16):
static __device__ __forceinline__ xgpu_float${N} xgpu_vload_half${N}(const half_t* p)
{ xgpu_float${N} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = xgpu_load_half(p, e); return v; }
static __device__ __forceinline__ void xgpu_vstore_half${N}(const xgpu_float${N} v, half_t* p)
{ _Pragma("unroll") for (int e = 0; e < ${N}; ++e) xgpu_store_half(p, e, v[e]); }
static __device__ __forceinline__ xgpu_float${N} xgpu_vload_bf16_${N}(const bfloat16_t* p)
{ xgpu_float${N} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = xgpu_bf16_to_float(p[e]); return v; }
static __device__ __forceinline__ void xgpu_vstore_bf16_${N}(const xgpu_float${N} v, bfloat16_t* p)
{ _Pragma("unroll") for (int e = 0; e < ${N}; ++e) p[e] = xgpu_float_to_bf16(v[e]); }
% endfor
// VEC(hfloat, N): N lanes of hfloat_t, the same choice as hfloat_t: a struct of xgpu_hfloat with the float
// vectors' operators where hfloat_t is half, VEC(float, N) elsewhere; VLOAD_HFLOAT / VSTORE_HFLOAT move them
// from and to half_t storage (rounded to nearest even into float16)
% for N in (2, 4, 8, 16):
<% V = f"xgpu_hfloat{N}"; T = "xgpu_hfloat"; F = "static __device__ __forceinline__" %>\
#if defined(XGPU_HALF_ARITHMETIC)
struct ${V} {
    ${T} xgpu_lane[${N}];
    __device__ __forceinline__ ${T}& operator[](int e) { return xgpu_lane[e]; }
    __device__ __forceinline__ const ${T}& operator[](int e) const { return xgpu_lane[e]; }
};
${F} ${V} xgpu_vload_hfloat${N}(const half_t* p)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e].bits = p[e]; return v; }
${F} void xgpu_vstore_hfloat${N}(const ${V} v, half_t* p)
{ _Pragma("unroll") for (int e = 0; e < ${N}; ++e) p[e] = v[e].bits; }
template <typename S> ${F} ${V} xgpu_vsplat_hfloat${N}(const S x)
{ ${V} v; const ${T} y = (${T})x; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = y; return v; }
${F} ${V} xgpu_vfma(const ${V} a, const ${V} b, const ${V} c)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = fma(a[e], b[e], c[e]); return v; }
${F} ${T} xgpu_vsum(const ${V} v)
{ ${T} s = v[0]; _Pragma("unroll") for (int e = 1; e < ${N}; ++e) s += v[e]; return s; }
${F} ${T} xgpu_vdot(const ${V} a, const ${V} b)
{ ${T} s = a[0] * b[0]; _Pragma("unroll") for (int e = 1; e < ${N}; ++e) s = fma(a[e], b[e], s); return s; }
% for op in ("+", "-", "*", "/"):
${F} ${V} operator${op}(const ${V} a, const ${V} b)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = a[e] ${op} b[e]; return v; }
${F} ${V} operator${op}(const ${V} a, const ${T} b)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = a[e] ${op} b; return v; }
${F} ${V} operator${op}(const ${T} a, const ${V} b)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = a ${op} b[e]; return v; }
${F} ${V}& operator${op}=(${V}& a, const ${V} b) { a = a ${op} b; return a; }
${F} ${V}& operator${op}=(${V}& a, const ${T} b) { a = a ${op} b; return a; }
% endfor
${F} ${V} operator-(const ${V} a)
{ ${V} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = -a[e]; return v; }
${F} ${V} operator+(const ${V} a) { return a; }
#else
typedef xgpu_float${N} ${V};
template <typename S> ${F} ${V} xgpu_vsplat_hfloat${N}(const S x) { return xgpu_vsplat_float${N}(x); }
${F} ${V} xgpu_vload_hfloat${N}(const half_t* p) { return xgpu_vload_half${N}(p); }
${F} void xgpu_vstore_hfloat${N}(const ${V} v, half_t* p) { xgpu_vstore_half${N}(v, p); }
#endif
% endfor
#define VLOAD_HFLOAT(N, ptr, i) xgpu_vload_hfloat##N((ptr) + (i))
#define VSTORE_HFLOAT(N, value, ptr, i) xgpu_vstore_hfloat##N((value), (ptr) + (i))
#define VEC(T, N) xgpu_##T##N
#define VLOAD(N, ptr, i) xgpu_vload##N((ptr) + (i))
#define VSTORE(N, value, ptr, i) xgpu_vstore##N((value), (ptr) + (i))
#define VLOAD_HALF(N, ptr, i) xgpu_vload_half##N((ptr) + (i))
#define VSTORE_HALF(N, value, ptr, i) xgpu_vstore_half##N((value), (ptr) + (i))
#define VLOAD_BF16(N, ptr, i) xgpu_vload_bf16_##N((ptr) + (i))
#define VSTORE_BF16(N, value, ptr, i) xgpu_vstore_bf16_##N((value), (ptr) + (i))
#define VSPLAT(T, N, s) xgpu_vsplat_##T##N(s)
#define VGET(v, i) ((v)[(i)])
#define VSET(v, i, x) ((v)[(i)] = (x))
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VDIV(a, b) ((a) / (b))
#define VFMA(a, b, c) xgpu_vfma((a), (b), (c))
#define VSUM(v) xgpu_vsum(v)
#define VDOT(a, b) xgpu_vdot((a), (b))
// VLOAD_WIDEN(T, N, ptr, i): N 8- or 16-bit integers at ptr + i, sign- or zero-extended (by the pointer's
// type) to a VEC(T, N) of int or uint (uint lanes hold the int's bits)
#define VLOAD_WIDEN(T, N, ptr, i) xgpu_vload_widen_##T##N((ptr) + (i))
% for T in ("int", "uint"):
% for N in (2, 4, 8, 16):
% for S, W in (("char", "(int)(signed char)"), ("signed char", "(int)"), ("unsigned char", "(int)"), ("short", "(int)"), ("unsigned short", "(int)")):
static __device__ __forceinline__ xgpu_${T}${N} xgpu_vload_widen_${T}${N}(const ${S}* p)
{ xgpu_${T}${N} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v[e] = (${T})(${W}p[e]); return v; }
% endfor
% endfor
% endfor

// Atomics on global and shared memory, returning the old value; memory order relaxed. Native CUDA
// atomics where there is one (double add: sm_60 and later, which every supported target is), a
// compare-and-swap loop for float/double min and max. Rendered with atomics="emulated", every
// operation but CAS itself goes through the loop (to test the fallback).
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
    # type: (the type atomicCAS takes, to its bits, from its bits)
    cas_types = {
        "int": ("int", "", ""),
        "uint": ("unsigned int", "", ""),
        "int64_t": ("unsigned long long", "(unsigned long long)", "(long long)"),
        "uint64_t": ("unsigned long long", "(unsigned long long)", ""),
        "float": ("int", "__float_as_int", "__int_as_float"),
        "double": ("unsigned long long", "(unsigned long long)__double_as_longlong", "__longlong_as_double"),
    }
    ops = {"add": "old + v", "sub": "old - v", "min": "(v < old ? v : old)", "max": "(v > old ? v : old)",
           "and": "old & v", "or": "old | v", "xor": "old ^ v", "xchg": "v"}
    ull = "(unsigned long long*)p"
    native = {
        "int": dict(add="atomicAdd(p, v)", sub="atomicSub(p, v)", min="atomicMin(p, v)", max="atomicMax(p, v)",
                    and_="atomicAnd(p, v)", or_="atomicOr(p, v)", xor="atomicXor(p, v)", xchg="atomicExch(p, v)"),
        "uint": dict(add="atomicAdd(p, v)", sub="atomicSub(p, v)", min="atomicMin(p, v)", max="atomicMax(p, v)",
                     and_="atomicAnd(p, v)", or_="atomicOr(p, v)", xor="atomicXor(p, v)", xchg="atomicExch(p, v)"),
        "int64_t": dict(add=f"(long long)atomicAdd({ull}, (unsigned long long)v)",
                        sub=f"(long long)atomicAdd({ull}, (unsigned long long)(-v))",
                        min="atomicMin((long long*)p, (long long)v)", max="atomicMax((long long*)p, (long long)v)",
                        and_=f"(long long)atomicAnd({ull}, (unsigned long long)v)",
                        or_=f"(long long)atomicOr({ull}, (unsigned long long)v)",
                        xor=f"(long long)atomicXor({ull}, (unsigned long long)v)",
                        xchg=f"(long long)atomicExch({ull}, (unsigned long long)v)"),
        "uint64_t": {op: f"atomic{fn}({ull}, {arg})" for op, fn, arg in (
            ("add", "Add", "v"), ("sub", "Add", "0ull - v"), ("min", "Min", "v"), ("max", "Max", "v"),
            ("and_", "And", "v"), ("or_", "Or", "v"), ("xor", "Xor", "v"), ("xchg", "Exch", "v"))},
        "float": dict(add="atomicAdd(p, v)", xchg="atomicExch(p, v)"),
        "double": dict(add="atomicAdd(p, v)",
                       xchg=f"__longlong_as_double((long long)atomicExch({ull}, (unsigned long long)__double_as_longlong(v)))"),
    }
%>
% for T, (B, to_bits, from_bits) in cas_types.items():
static __device__ __forceinline__ ${T} xgpu_atomic_cas(${T}* p, ${T} expected, ${T} desired)
{ return ${from_bits}(atomicCAS((${B}*)p, ${to_bits}(expected), ${to_bits}(desired))); }
% for op, expr in ops.items():
<%
    if T in ("float", "double") and op not in ("add", "min", "max", "xchg"):
        continue
    fn = native[T].get(op + "_" if op in ("and", "or") else op)
%>\
static __device__ __forceinline__ ${T} xgpu_atomic_${op}(${T}* p, ${T} v)
{
% if fn:
#if !defined(XGPU_ATOMICS_EMULATED)
    return ${fn};
#else
% endif
    ${T} old = *(volatile ${T}*)p;
    for (;;) {
        const ${T} want = ${expr};
        const ${B} seen = atomicCAS((${B}*)p, ${to_bits}(old), ${to_bits}(want));
        if (seen == ${to_bits}(old)) return old;
        old = ${from_bits}(seen);
    }
% if fn:
#endif
% endif
}
% endfor
% endfor

// OpenCL's integer helpers under their OpenCL names, so that both backends take them
% for T, pop, clz, hi in (("int", "__popc", "__clz", "__mulhi"), ("unsigned int", "__popc", "__clz", "__umulhi"), ("long long", "__popcll", "__clzll", "__mul64hi"), ("unsigned long long", "__popcll", "__clzll", "__umul64hi")):
static __device__ __forceinline__ ${T} popcount(${T} x) { return (${T})${pop}(x); }
static __device__ __forceinline__ ${T} clz(${T} x) { return (${T})${clz}(x); }
static __device__ __forceinline__ ${T} mul_hi(${T} a, ${T} b) { return ${hi}(a, b); }
% endfor

// Complex numbers: numpy's complex64/complex128 layout (real, imaginary)
#define PRINTF printf
struct xgpu_cfloat { float re, im; };
typedef struct xgpu_cfloat cfloat_t;
struct xgpu_cdouble { double re, im; };
typedef struct xgpu_cdouble cdouble_t;
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
static __device__ __forceinline__ ${C} xgpu_cmake_${C}(${T} re, ${T} im) { ${C} z; z.re = re; z.im = im; return z; }
static __device__ __forceinline__ ${C} xgpu_cadd(${C} a, ${C} b) { return xgpu_cmake_${C}(a.re + b.re, a.im + b.im); }
static __device__ __forceinline__ ${C} xgpu_csub(${C} a, ${C} b) { return xgpu_cmake_${C}(a.re - b.re, a.im - b.im); }
static __device__ __forceinline__ ${C} xgpu_cmul(${C} a, ${C} b)
{ return xgpu_cmake_${C}(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re); }
static __device__ __forceinline__ ${C} xgpu_cconj(${C} z) { return xgpu_cmake_${C}(z.re, -z.im); }
static __device__ __forceinline__ ${T} xgpu_cabs(${C} z) { return hypot(z.re, z.im); }
static __device__ __forceinline__ ${C} xgpu_cexp(${C} z)
{ const ${T} m = exp(z.re); return xgpu_cmake_${C}(m * cos(z.im), m * sin(z.im)); }
% endfor

