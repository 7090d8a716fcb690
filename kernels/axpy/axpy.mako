## Strided axpy with a work-group reduction: y[i*incy] = alpha * x[i*incx] + y[i*incy] for i < n,
## and partial[g] = the sum of the new y values of work-group g (summed on the host).
##
## Defines: dtype (numpy dtype of x and y), acc (numpy dtype the sum accumulates in),
##          wg (work-group size, a power of two).
<%
    T = ctype(dtype)
    ACC = ctype(acc)
    half = T == "half_t"
    load = (lambda p, i: f"LOAD_HALF({p}, {i})") if half else (lambda p, i: f"{p}[{i}]")
    CT = "float" if half else T
%>
KERNEL void axpy_sum(
    GLOBAL_MEM ${T}* RESTRICT y,
    GLOBAL_MEM const ${T}* RESTRICT x,
    GLOBAL_MEM ${ACC}* RESTRICT partial,
    const ${CT} alpha,
    const index_t n,
    const index_t incx,
    const index_t incy)
{
    LOCAL_MEM ${ACC} scratch[${wg}];
    const index_t i = GLOBAL_ID(0);
    const index_t lid = LOCAL_ID(0);

    // No early return: every work-item of a padded group must reach the barriers below.
    ${ACC} value = (${ACC})0;
    if (i < n) {
        const ${CT} r = alpha * ${load("x", "i * incx")} + ${load("y", "i * incy")};
% if half:
        STORE_HALF(y, i * incy, r);
        value = (${ACC})LOAD_HALF(y, i * incy);
% else:
        y[i * incy] = r;
        value = (${ACC})r;
% endif
    }
    scratch[lid] = value;
    LOCAL_BARRIER;
    for (index_t s = ${wg} / 2; s > 0; s >>= 1) {
        if (lid < s)
            scratch[lid] += scratch[lid + s];
        LOCAL_BARRIER;
    }
    if (lid == 0)
        partial[GROUP_ID(0)] = scratch[0];
}
