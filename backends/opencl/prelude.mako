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

typedef int index_t;
typedef unsigned int uindex_t;
typedef half half_t;

#define GLOBAL_ID(d) ((index_t)get_global_id(d))
#define LOCAL_ID(d) ((index_t)get_local_id(d))
#define GROUP_ID(d) ((index_t)get_group_id(d))
#define LOCAL_SIZE(d) ((index_t)get_local_size(d))
#define NUM_GROUPS(d) ((index_t)get_num_groups(d))
#define GLOBAL_SIZE(d) ((index_t)get_global_size(d))

#define LOAD_HALF(ptr, i) vload_half((i), (ptr))
#define STORE_HALF(ptr, i, value) vstore_half_rte((value), (i), (ptr))

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

// short vectors of N = 2, 4, 8 or 16 elements of float or double
#define VEC(T, N) T##N
#define VLOAD(N, ptr, i) vload##N(0, (ptr) + (i))
#define VSTORE(N, value, ptr, i) vstore##N((value), 0, (ptr) + (i))
#define VSPLAT(T, N, s) ((T##N)(s))
#define VFMA(a, b, c) fma((a), (b), (c))
