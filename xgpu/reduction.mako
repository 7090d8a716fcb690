## A reduction from expressions (xgpu.reduction): out[row * chunks + chunk] = the reduction, with `reduce_expr`
## over a and b, of `map_expr` over the elements of one stretch of `length` (row `row`, the part of it that
## work-group `chunk` strides through). Each work-item folds its elements in a register, then the work-group
## folds the work-items' values in local memory; a second launch folds the chunks when there are several.
##
## Defines: name, arrays (tuple of (name, dtype): contiguous inputs, each row `length` long), scalars
##          (tuple of (name, dtype)), map_expr, reduce_expr, neutral (C text), out_dtype, preamble, wg
##          (the work-group size, a power of two).
<%
    def compute(dt):
        return compute_ctype(dt)

    ACC = compute(out_dtype)
%>
${preamble}

DEVICE_FN ${ACC} ${name}__reduce(const ${ACC} a, const ${ACC} b)
{
    return (${reduce_expr});
}

KERNEL void ${name}(
    GLOBAL_MEM ${ctype(out_dtype)}* out,
% for a, dt in arrays:
    GLOBAL_MEM const ${ctype(dt)}* ${a}__base,
    const index_t ${a}__off,
% endfor
% for s, dt in scalars:
    const ${compute(dt)} ${s},
% endfor
    const index_t length,
    const index_t chunks)
{
    LOCAL_MEM ${ACC} scratch__[${wg}];
    const index_t row__ = GROUP_ID(1);
    const index_t lid__ = LOCAL_ID(0);
<%def name="fold(acc, offset)">\
        {
            const index_t i = j__ + ${offset};
            const index_t at__ = row__ * length + i;
% for a, dt in arrays:
%   if storage_suffix(ctype(dt)):
#define ${a} LOAD_${storage_suffix(ctype(dt))}(${a}__base, ${a}__off + at__)
%   else:
#define ${a} (${a}__base[${a}__off + at__])
%   endif
% endfor
            ${acc} = ${name}__reduce(${acc}, (${ACC})(${map_expr}));
% for a, dt in arrays:
#undef ${a}
% endfor
        }
</%def>
    // Four independent accumulators per work-item (each of the launch's strides): CPU runtimes keep
    // four vector chains in flight instead of waiting on one. No early return: every work-item
    // reaches the barriers below.
    ${ACC} acc__ = (${ACC})(${neutral});
    ${ACC} acc1__ = (${ACC})(${neutral});
    ${ACC} acc2__ = (${ACC})(${neutral});
    ${ACC} acc3__ = (${ACC})(${neutral});
    const index_t step__ = chunks * ${wg};
    index_t j__ = GROUP_ID(0) * ${wg} + lid__;
    for (; j__ + 3 * step__ < length; j__ += 4 * step__) {
${fold("acc__", "0")}\
${fold("acc1__", "step__")}\
${fold("acc2__", "2 * step__")}\
${fold("acc3__", "3 * step__")}\
    }
    for (; j__ < length; j__ += step__) {
${fold("acc__", "0")}\
    }
    acc__ = ${name}__reduce(${name}__reduce(acc__, acc1__), ${name}__reduce(acc2__, acc3__));
    scratch__[lid__] = acc__;
    LOCAL_BARRIER;
    for (index_t s = ${wg} / 2; s > 0; s >>= 1) {
        if (lid__ < s)
            scratch__[lid__] = ${name}__reduce(scratch__[lid__], scratch__[lid__ + s]);
        LOCAL_BARRIER;
    }
    if (lid__ == 0) {
% if storage_suffix(ctype(out_dtype)):
        STORE_${storage_suffix(ctype(out_dtype))}(out, row__ * chunks + GROUP_ID(0), scratch__[0]);
% else:
        out[row__ * chunks + GROUP_ID(0)] = scratch__[0];
% endif
    }
}
