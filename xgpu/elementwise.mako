## An elementwise kernel from one C statement (xgpu.elementwise): each array argument's name stands for
## its element at the current position, so strided views and broadcast inputs need no copies.
##
## Defines: name (the kernel's name), arrays (tuple of (name, dtype, const)), scalars (tuple of (name, dtype)),
##          operation (C statements), preamble (C text before the kernel), ndim (0: every array is
##          contiguous, element i at base + offset + i; otherwise the number of dimensions the launch
##          indexes, each array with one stride (in elements) per dimension).
<%
    def ctype_of(dt):
        return ctype(dt)

    def compute(dt):
        return compute_ctype(dt)

    def words(dt):  # HALF or BF16 for the storage-only floats, read and written through their words
        return storage_suffix(ctype(dt))
%>
${preamble}

KERNEL void ${name}(
% for a, dt, const in arrays:
    GLOBAL_MEM ${"const " if const else ""}${ctype_of(dt)}* ${a}__base,
    const index_t ${a}__off,
%   for d in range(ndim):
    const index_t ${a}__s${d},
%   endfor
% endfor
% for s, dt in scalars:
    const ${compute(dt)} ${s},
% endfor
% for d in range(1, ndim):
    const index_t shape__${d},
% endfor
    const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
% if ndim:
        index_t rest__ = i;
%   for d in reversed(range(1, ndim)):
        const index_t i__${d} = rest__ % shape__${d};
        rest__ /= shape__${d};
%   endfor
        const index_t i__0 = rest__;
% endif
% for a, dt, const in arrays:
<%
    terms = [f"{a}__off"] + (["i"] if not ndim else [f"i__{d} * {a}__s{d}" for d in range(ndim)])
%>\
        const index_t ${a}__i = ${" + ".join(terms)};
%   if words(dt):
        float ${a}__v = LOAD_${words(dt)}(${a}__base, ${a}__i);
#define ${a} ${a}__v
%   else:
#define ${a} (${a}__base[${a}__i])
%   endif
% endfor
        ${operation};
% for a, dt, const in arrays:
%   if words(dt) and not const:
        STORE_${words(dt)}(${a}__base, ${a}__i, ${a}__v);
%   endif
#undef ${a}
% endfor
    }
}
