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

typedef int index_t;
typedef unsigned int uindex_t;
typedef unsigned short half_t;

static __device__ __forceinline__ index_t xgpu_local_id(int d)
{ return (index_t)(d == 0 ? threadIdx.x : d == 1 ? threadIdx.y : threadIdx.z); }
static __device__ __forceinline__ index_t xgpu_group_id(int d)
{ return (index_t)(d == 0 ? blockIdx.x : d == 1 ? blockIdx.y : blockIdx.z); }
static __device__ __forceinline__ index_t xgpu_local_size(int d)
{ return (index_t)(d == 0 ? blockDim.x : d == 1 ? blockDim.y : blockDim.z); }
static __device__ __forceinline__ index_t xgpu_num_groups(int d)
{ return (index_t)(d == 0 ? gridDim.x : d == 1 ? gridDim.y : gridDim.z); }

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
#define LOAD_HALF(ptr, i) xgpu_load_half((ptr), (i))
#define STORE_HALF(ptr, i, value) xgpu_store_half((ptr), (i), (value))

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

// short vectors of N = 2, 4, 8 or 16 elements of float or double: structs with the OpenCL operations
% for T in ("float", "double"):
% for N in (2, 4, 8, 16):
struct xgpu_${T}${N} { ${T} s[${N}]; };
static __device__ __forceinline__ xgpu_${T}${N} xgpu_vload${N}(const ${T}* p)
{ xgpu_${T}${N} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v.s[e] = p[e]; return v; }
static __device__ __forceinline__ void xgpu_vstore${N}(const xgpu_${T}${N} v, ${T}* p)
{ _Pragma("unroll") for (int e = 0; e < ${N}; ++e) p[e] = v.s[e]; }
static __device__ __forceinline__ xgpu_${T}${N} xgpu_vsplat${N}(const ${T} x)
{ xgpu_${T}${N} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v.s[e] = x; return v; }
static __device__ __forceinline__ xgpu_${T}${N} xgpu_vfma(const xgpu_${T}${N} a, const xgpu_${T}${N} b, const xgpu_${T}${N} c)
{ xgpu_${T}${N} v; _Pragma("unroll") for (int e = 0; e < ${N}; ++e) v.s[e] = fma(a.s[e], b.s[e], c.s[e]); return v; }
% endfor
% endfor
#define VEC(T, N) xgpu_##T##N
#define VLOAD(N, ptr, i) xgpu_vload##N((ptr) + (i))
#define VSTORE(N, value, ptr, i) xgpu_vstore##N((value), (ptr) + (i))
#define VSPLAT(T, N, s) xgpu_vsplat##N((T)(s))
#define VFMA(a, b, c) xgpu_vfma((a), (b), (c))
