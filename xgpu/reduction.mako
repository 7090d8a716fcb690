## Reductions from expressions (xgpu.reduction): `reduce_expr` over a and b, folded over `map_expr` of the
## elements. The input is seen as (outer, length, inner), C order, the middle axis reduced (every element:
## (1, n, 1); the last axis: (rows, length, 1); a leading axis: (1, length, inner)). The kernels:
##
## ${name}: one row (inner == 1) split over `chunks` work-groups, each folding one contiguous stretch of
##   `per_chunk` elements. The work-items read consecutive elements, `wg` apart per step, `unroll` steps
##   per tile into independent accumulators; the trip count is the same for every work-item, so CPU
##   runtimes vectorise across work-items (consecutive lanes: one vector load) and keep the whole
##   work-group in one pass over the stretch. out[row * chunks + chunk] = the stretch's value.
## ${name}_items: one work-item per row (inner == 1), folding `per_chunk` elements of it from chunk
##   GROUP_ID(1): consecutive work-items on consecutive rows (short rows), or each work-item one
##   contiguous stretch (runtimes that vectorise inside a work-item). out[chunk * rows + row].
## ${name}_cols (GPUs) and ${name}_rowwise (CPUs): a strided axis (inner > 1), described at each.
## A second launch folds the chunks when there are several (xgpu/_elementwise.py).
##
## Defines: name, arrays (tuple of (name, dtype): contiguous inputs), scalars (tuple of (name, dtype)),
##          map_expr, reduce_expr, neutral (C text), out_dtype, preamble, wg (the split kernel's
##          work-group size, a power of two), unroll (accumulators per work-item), cols (columns per
##          work-group of the _cols kernel, a multiple of wg), interleave (bool: see _cols).
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
<%def name="params()">\
% for a, dt in arrays:
    GLOBAL_MEM const ${ctype(dt)}* RESTRICT ${a}__base,
    const index_t ${a}__off,
% endfor
% for s, dt in scalars:
    const ${compute(dt)} ${s},
% endfor
</%def>
## acc = reduce(acc, map(element at `at`)), with `i` the position along the reduced axis
<%def name="fold(acc, at, pos)">\
        {
            const index_t i = ${pos};
            const index_t at__ = ${at};
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
            (void)i;
        }
</%def>
<%def name="store(where, value)">\
% if storage_suffix(ctype(out_dtype)):
        STORE_${storage_suffix(ctype(out_dtype))}(out, ${where}, ${value});
% else:
        out[${where}] = ${value};
% endif
</%def>

KERNEL void ${name}(
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT out,
${params()}\
    const index_t length,
    const index_t chunks,
    const index_t per_chunk)
{
    LOCAL_MEM ${ACC} scratch__[${wg}];
    const index_t row__ = GROUP_ID(1);
    const index_t lid__ = LOCAL_ID(0);
    const index_t start__ = GROUP_ID(0) * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
    const index_t row_at__ = row__ * length;
% for u in range(unroll):
    ${ACC} acc${u}__ = (${ACC})(${neutral});
% endfor
    // whole tiles of wg * unroll elements, no bounds checks; then the tail, checked. The loops' trip
    // counts do not depend on the work-item: no early return, every work-item reaches the barriers.
    index_t t__ = start__;
    for (; t__ + ${wg * unroll} <= end__; t__ += ${wg * unroll}) {
% for u in range(unroll):
${fold(f"acc{u}__", f"row_at__ + t__ + {u * wg} + lid__", f"t__ + {u * wg} + lid__")}\
% endfor
    }
    for (; t__ < end__; t__ += ${wg}) {
        if (t__ + lid__ < end__) {
${fold("acc0__", "row_at__ + t__ + lid__", "t__ + lid__")}\
        }
    }
<%
    accs = [f"acc{u}__" for u in range(unroll)]
    while len(accs) > 1:
        accs = [f"{name}__reduce({accs[k]}, {accs[k + 1]})" if k + 1 < len(accs) else accs[k]
                for k in range(0, len(accs), 2)]
%>\
    scratch__[lid__] = ${accs[0]};
    LOCAL_BARRIER;
    for (index_t s = ${wg} / 2; s > 0; s >>= 1) {
        if (lid__ < s)
            scratch__[lid__] = ${name}__reduce(scratch__[lid__], scratch__[lid__ + s]);
        LOCAL_BARRIER;
    }
    if (lid__ == 0) {
${store("row__ * chunks + GROUP_ID(0)", "scratch__[0]")}\
    }
}

KERNEL void ${name}_items(
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT out,
${params()}\
    const index_t length,
    const index_t rows,
    const index_t per_chunk)
{
    const index_t row__ = GLOBAL_ID(0);
    if (row__ < rows) {
        const index_t start__ = GROUP_ID(1) * per_chunk;
        const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
        const index_t row_at__ = row__ * length;
% for u in range(unroll):
        ${ACC} acc${u}__ = (${ACC})(${neutral});
% endfor
        index_t k__ = start__;
        for (; k__ + ${unroll} <= end__; k__ += ${unroll}) {
% for u in range(unroll):
${fold(f"acc{u}__", f"row_at__ + k__ + {u}", f"k__ + {u}")}\
% endfor
        }
        for (; k__ < end__; ++k__) {
${fold("acc0__", "row_at__ + k__", "k__")}\
        }
${store("GROUP_ID(1) * rows + row__", accs[0])}\
    }
}

## (outer, length, inner) with inner > 1: work-group (tile, chunk, o) folds rows [chunk * per_chunk, ...) of
## `cols` columns of outer block o, each work-item `cols / wg` columns in as many accumulators (interleave:
## columns m * wg + lid, consecutive work-items on consecutive columns; else lid * per_item + m, each
## work-item's columns contiguous). out[(chunk * outer + o) * inner + column].
<% per_item = cols // wg %>
KERNEL void ${name}_cols(
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT out,
${params()}\
    const index_t length,
    const index_t inner,
    const index_t per_chunk)
{
    const index_t lid__ = LOCAL_ID(0);
    const index_t o__ = GROUP_ID(2);
    const index_t chunk__ = GROUP_ID(1);
    const index_t outer__ = NUM_GROUPS(2);
    const index_t c0__ = GROUP_ID(0) * ${cols};
    const index_t start__ = chunk__ * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
% for m in range(per_item):
<% col = f"c0__ + {m * wg} + lid__" if interleave else f"c0__ + lid__ * {per_item} + {m}" %>\
    const index_t col${m}__ = ${col};
    ${ACC} acc${m}__ = (${ACC})(${neutral});
% endfor
    if (c0__ + ${cols} <= inner) {
        for (index_t k__ = start__; k__ < end__; ++k__) {
            const index_t row_at__ = (o__ * length + k__) * inner;
% for m in range(per_item):
${fold(f"acc{m}__", f"row_at__ + col{m}__", "k__")}\
% endfor
        }
    } else {
        for (index_t k__ = start__; k__ < end__; ++k__) {
            const index_t row_at__ = (o__ * length + k__) * inner;
% for m in range(per_item):
            if (col${m}__ < inner) {
${fold(f"acc{m}__", f"row_at__ + col{m}__", "k__")}\
            }
% endfor
        }
    }
% for m in range(per_item):
    if (col${m}__ < inner) {
${store(f"(chunk__ * outer__ + o__) * inner + col{m}__", f"acc{m}__")}\
    }
% endfor
}

## The CPU form of the strided case: one work-item per work-group takes a chunk of rows and a tile of
## `tile` consecutive columns, and keeps one accumulator per column in its output row (a few KiB that
## stay in the cache), updated row after row: each core reads whole rows, one sequential stream, and
## the column loop is a plain loop over consecutive elements that the compiler vectorises.
## out[(chunk * outer + o) * inner + column]. (Partial results are never float16: no such form.)
% if not storage_suffix(ctype(out_dtype)):
KERNEL void ${name}_rowwise(
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT out,
${params()}\
    const index_t length,
    const index_t inner,
    const index_t per_chunk,
    const index_t tile)
{
    const index_t chunk__ = GROUP_ID(0);
    const index_t o__ = GROUP_ID(2);
    const index_t c0__ = GROUP_ID(1) * tile;
    const index_t c1__ = c0__ + tile < inner ? c0__ + tile : inner;
    const index_t start__ = chunk__ * per_chunk;
    const index_t end__ = start__ + per_chunk < length ? start__ + per_chunk : length;
    GLOBAL_MEM ${ctype(out_dtype)}* RESTRICT acc__ = out + (chunk__ * NUM_GROUPS(2) + o__) * inner;
    for (index_t c__ = c0__; c__ < c1__; ++c__)
        acc__[c__] = (${ACC})(${neutral});
    for (index_t k__ = start__; k__ < end__; ++k__) {
        const index_t row_at__ = (o__ * length + k__) * inner;
        for (index_t c__ = c0__; c__ < c1__; ++c__) {
${fold("acc__[c__]", "row_at__ + c__", "k__")}\
        }
    }
}
% endif
