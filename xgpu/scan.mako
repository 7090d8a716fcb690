## Prefix scans from expressions (xgpu.scan): out[k] = x[0] (+) x[1] (+) ... (+) x[k] (inclusive) or up to
## x[k - 1] (exclusive, out[0] the neutral element), with (+) `scan_expr` over a (the earlier value) and
## b, and x[k] `map_expr` at position k of a row. The input is C-contiguous rows of `length`; each row is
## cut into `chunks` stretches of `per_chunk` elements, one work-group each. Three launches:
##
## ${name}_totals: each stretch's total -> totals[row * chunks + chunk]
## ${name}_offsets: per row, totals turned into their exclusive prefix (one work-item per row, in order)
## ${name}: each stretch scanned again, starting from its offset, and written
## (${name}_seq_totals and ${name}_seq: the same two stretch kernels in the CPU form, at the end)
##
## Both stretch kernels walk their stretch in tiles of wg * per_item elements: work-item l folds the
## per_item consecutive elements l * per_item... in registers, the work-group scans the wg partial values
## in local memory (Hillis-Steele, order kept: the expression need only be associative), and a carry
## takes the tile's total on to the next. Trip counts do not depend on the work-item: every work-item
## reaches every barrier.
##
## Defines: name, arrays, scalars (as reduction.mako), map_expr, scan_expr, neutral (C text), out_dtype,
##          preamble, wg (work-group size, a power of two), per_item, inclusive (bool).
<%
    def compute(dt):
        return compute_ctype(dt)

    ACC = compute(out_dtype)
%>
${preamble}

DEVICE_FN ${ACC} ${name}__op(const ${ACC} a, const ${ACC} b)
{
    return (${scan_expr});
}
<%def name="params()">\
% for a, dt in arrays:
    GLOBAL_MEM const ${ctype(dt)}* RESTRICT ${a}__base,
    const index_t ${a}__off,
% endfor
% for s, dt in scalars:
    const ${compute(dt)} ${s},
% endfor
</%def>
## v${u}__ (when `keep`) = the inclusive prefix of this work-item's elements up to its u-th (the last value
## repeated past the stretch's end)
<%def name="tile_values(keep)">\
        const index_t first__ = t__ + lid__ * ${per_item};
        ${ACC} run__ = (${ACC})(${neutral});
% for u in range(per_item):
% if keep and (inclusive or u < per_item - 1):
        ${ACC} v${u}__;
% endif
        {
            const index_t i = first__ + ${u};
            if (i < end__) {
% for a, dt in arrays:
%   if storage_suffix(ctype(dt)):
#define ${a} LOAD_${storage_suffix(ctype(dt))}(${a}__base, ${a}__off + row_at__ + i)
%   else:
#define ${a} (${a}__base[${a}__off + row_at__ + i])
%   endif
% endfor
                run__ = ${name}__op(run__, (${ACC})(${map_expr}));
% for a, dt in arrays:
#undef ${a}
% endfor
            }
% if keep and (inclusive or u < per_item - 1):
            v${u}__ = run__;
% endif
        }
% endfor
        part__[lid__] = run__;
        LOCAL_BARRIER;
        // Hillis-Steele: after the step of distance s, part[l] holds the values l - 2s + 1 .. l, in order
        for (index_t s__ = 1; s__ < ${wg}; s__ <<= 1) {
            const ${ACC} earlier__ = lid__ >= s__ ? part__[lid__ - s__] : (${ACC})(${neutral});
            LOCAL_BARRIER;
            part__[lid__] = ${name}__op(earlier__, part__[lid__]);
            LOCAL_BARRIER;
        }
</%def>

KERNEL void ${name}_totals(
    GLOBAL_MEM ${ACC}* RESTRICT totals,
${params()}\
    const index_t length,
    const index_t chunks,
    const index_t per_chunk)
{
    LOCAL_MEM ${ACC} part__[${wg}];
    const index_t row__ = GROUP_ID(1);
    const index_t lid__ = LOCAL_ID(0);
    const index_t start__ = GROUP_ID(0) * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
    const index_t row_at__ = row__ * length;
    ${ACC} carry__ = (${ACC})(${neutral});
    for (index_t t__ = start__; t__ < end__; t__ += ${wg * per_item}) {
${tile_values(False)}\
        carry__ = ${name}__op(carry__, part__[${wg - 1}]);
        LOCAL_BARRIER;
    }
    if (lid__ == 0)
        totals[row__ * chunks + GROUP_ID(0)] = carry__;
}

KERNEL void ${name}_offsets(
    GLOBAL_MEM ${ACC}* RESTRICT totals,
    const index_t rows,
    const index_t chunks)
{
    const index_t row__ = GLOBAL_ID(0);
    if (row__ < rows) {
        ${ACC} run__ = (${ACC})(${neutral});
        for (index_t c__ = 0; c__ < chunks; ++c__) {
            const ${ACC} total__ = totals[row__ * chunks + c__];
            totals[row__ * chunks + c__] = run__;
            run__ = ${name}__op(run__, total__);
        }
    }
}

KERNEL void ${name}(
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT out,
    GLOBAL_MEM const ${ACC}* RESTRICT offsets,
${params()}\
    const index_t length,
    const index_t chunks,
    const index_t per_chunk)
{
    LOCAL_MEM ${ACC} part__[${wg}];
    const index_t row__ = GROUP_ID(1);
    const index_t lid__ = LOCAL_ID(0);
    const index_t start__ = GROUP_ID(0) * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
    const index_t row_at__ = row__ * length;
    // one stretch per row: no totals were computed, the row starts from the neutral element
    ${ACC} carry__ = chunks > 1 ? offsets[row__ * chunks + GROUP_ID(0)] : (${ACC})(${neutral});
    for (index_t t__ = start__; t__ < end__; t__ += ${wg * per_item}) {
${tile_values(True)}\
        const ${ACC} before__ = lid__ > 0 ? ${name}__op(carry__, part__[lid__ - 1]) : carry__;
% for u in range(per_item):
        if (first__ + ${u} < end__) {
<%
    value = (f"{name}__op(before__, v{u}__)" if inclusive else
             ("before__" if u == 0 else f"{name}__op(before__, v{u - 1}__)"))
%>\
% if storage_suffix(ctype(out_dtype)):
            STORE_${storage_suffix(ctype(out_dtype))}(out, row_at__ + first__ + ${u}, ${value});
% else:
            out[row_at__ + first__ + ${u}] = (${ctype(out_dtype)})(${value});
% endif
        }
% endfor
        carry__ = ${name}__op(carry__, part__[${wg - 1}]);
        LOCAL_BARRIER;
    }
}

## The CPU form: one work-item per work-group walks its whole stretch in order, the running value in a
## register (`seq`: a sequential stream per core, no barriers, no gathers). totals as ${name}_totals.
<%def name="seq_value(i)">\
% for a, dt in arrays:
%   if storage_suffix(ctype(dt)):
#define ${a} LOAD_${storage_suffix(ctype(dt))}(${a}__base, ${a}__off + row_at__ + i)
%   else:
#define ${a} (${a}__base[${a}__off + row_at__ + i])
%   endif
% endfor
            const ${ACC} x__ = (${ACC})(${map_expr});
% for a, dt in arrays:
#undef ${a}
% endfor
</%def>

KERNEL void ${name}_seq_totals(
    GLOBAL_MEM ${ACC}* RESTRICT totals,
${params()}\
    const index_t length,
    const index_t chunks,
    const index_t per_chunk)
{
    const index_t row__ = GROUP_ID(1);
    const index_t start__ = GROUP_ID(0) * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
    const index_t row_at__ = row__ * length;
    ${ACC} run__ = (${ACC})(${neutral});
    for (index_t i = start__; i < end__; ++i) {
${seq_value("i")}\
        run__ = ${name}__op(run__, x__);
    }
    totals[row__ * chunks + GROUP_ID(0)] = run__;
}

KERNEL void ${name}_seq(
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT out,
    GLOBAL_MEM const ${ACC}* RESTRICT offsets,
${params()}\
    const index_t length,
    const index_t chunks,
    const index_t per_chunk)
{
    const index_t row__ = GROUP_ID(1);
    const index_t start__ = GROUP_ID(0) * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
    const index_t row_at__ = row__ * length;
    ${ACC} run__ = chunks > 1 ? offsets[row__ * chunks + GROUP_ID(0)] : (${ACC})(${neutral});
    for (index_t i = start__; i < end__; ++i) {
${seq_value("i")}\
% if inclusive:
        run__ = ${name}__op(run__, x__);
% endif
% if storage_suffix(ctype(out_dtype)):
        STORE_${storage_suffix(ctype(out_dtype))}(out, row_at__ + i, run__);
% else:
        out[row_at__ + i] = (${ctype(out_dtype)})(run__);
% endif
% if not inclusive:
        run__ = ${name}__op(run__, x__);
% endif
    }
}
