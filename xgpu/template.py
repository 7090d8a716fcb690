"""The neutral kernel template language: Mako templates rendered for one backend's language.

A template is C in the subset that OpenCL C and CUDA C share, written with the neutral words
of :data:`REQUIRED_WORDS`; each backend's prelude defines those words for its compiler.
Rendering needs no device: it only needs a backend's prelude.

Every rendered line is traced back to its template line, and ``#line`` directives are put into
the output so that compilers name the template file and line in their diagnostics.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import marshal
import os
import re
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from mako import exceptions as mako_exceptions
from mako.lookup import TemplateLookup
from mako.template import Template

from .errors import TemplateError

#: backends whose every device has native subgroups (CUDA's warps): a render for them with no device
#: takes the native words; other backends' renders with no device take the emulation
_WARP_BACKENDS = frozenset({"cuda"})

__all__ = ["ATOMIC_DTYPES", "ATOMIC_OPS", "EMULATED_SUBGROUP_SIZE", "REQUIRED_WORDS", "SUBGROUP_SCRATCH", "KernelTemplate", "RenderedSource", "atomic_features",
           "compute_ctype", "ctype", "storage_suffix", "parse_define"]

#: Every word a backend's prelude must define, so that neutral templates compile everywhere.
#: docs/templates.md documents each with its CUDA and OpenCL meaning.
REQUIRED_WORDS: tuple[str, ...] = (
    # qualifiers
    "KERNEL",  # a kernel entry point
    "DEVICE_FN",  # a function callable from kernels
    "INLINE",  # ask for inlining
    "GLOBAL_MEM",  # pointer into global (device) memory
    "LOCAL_MEM",  # local (OpenCL) / shared (CUDA) memory, declared inside a kernel
    "LOCAL_MEM_ARG",  # pointer to local memory passed to a device function
    "LOCAL_MEM_DYNAMIC",  # LOCAL_MEM_DYNAMIC(T, name); in a kernel body: an array sized at launch (local_mem=)
    "CONSTANT_MEM",  # read-only constant memory
    "RESTRICT",  # pointer does not alias
    # synchronisation
    "LOCAL_BARRIER",  # barrier for the work-group, with a local-memory fence
    "GLOBAL_BARRIER",  # barrier for the work-group that also orders its global-memory accesses
    "MEM_FENCE",  # order this work-item's global and local memory accesses (no waiting)
    # launch shape
    "REQD_WORK_GROUP_SIZE",  # KERNEL REQD_WORK_GROUP_SIZE(x, y, z) void k(...): the only shape it launches with
    # subgroups (warps)
    "SUBGROUP_SIZE",
    "SUBGROUP_LOCAL_ID",
    "SUBGROUP_ID",
    "SUBGROUP_SHUFFLE",  # SUBGROUP_SHUFFLE(x, i): x of lane i
    "SUBGROUP_BROADCAST",  # SUBGROUP_BROADCAST(x, i): the same, i the same in every lane
    "SUBGROUP_REDUCE_ADD",
    "SUBGROUP_REDUCE_MIN",
    "SUBGROUP_REDUCE_MAX",
    "SUBGROUP_BARRIER",
    # ids and sizes, all of type index_t
    "GLOBAL_ID",
    "LOCAL_ID",
    "GROUP_ID",
    "LOCAL_SIZE",
    "NUM_GROUPS",
    "GLOBAL_SIZE",
    # types
    "index_t",  # signed index: 32-bit, or 64-bit when rendered with index_bits=64
    "uindex_t",  # unsigned index of the same width
    "half_t",  # float16 storage type (no arithmetic on it: load and store through the helpers)
    "bfloat16_t",  # bfloat16 storage type (the top 16 bits of a float; load and store through the helpers)
    "hfloat_t",  # half-precision arithmetic where the device has it (rendered with half_arithmetic), else float
    "int64_t",  # signed 64-bit integer on every backend
    "uint64_t",  # unsigned 64-bit integer
    "bool_t",  # numpy's bool: one byte, 0 or 1
    # float16 helpers
    "LOAD_HALF",  # LOAD_HALF(ptr, i) -> float
    "STORE_HALF",  # STORE_HALF(ptr, i, value)
    # bfloat16 helpers
    "LOAD_BF16",  # LOAD_BF16(ptr, i) -> float (exact)
    "STORE_BF16",  # STORE_BF16(ptr, i, value): rounded to nearest even
    # math: the same names on every backend
    "FMA",
    "SQRT",
    "RSQRT",
    "EXP",
    "LOG",
    "FABS",
    "FMIN",
    "FMAX",
    "MIN",
    "MAX",
    # short vectors (N = 2, 4, 8, 16 lanes of float, double, int, uint or hfloat: hfloat_t's lanes)
    "VEC",  # VEC(float, 8): the type
    "VLOAD",  # VLOAD(8, ptr, i): ptr[i .. i+7] as a vector
    "VSTORE",  # VSTORE(8, v, ptr, i)
    "VLOAD_HALF",  # VLOAD_HALF(8, ptr, i): half_t ptr[i .. i+7] as a float vector
    "VSTORE_HALF",  # VSTORE_HALF(8, v, ptr, i): a float vector rounded to half_t
    "VLOAD_BF16",  # VLOAD_BF16(8, ptr, i): bfloat16_t ptr[i .. i+7] as a float vector
    "VSTORE_BF16",  # VSTORE_BF16(8, v, ptr, i): a float vector rounded to bfloat16_t
    "VLOAD_HFLOAT",  # VLOAD_HFLOAT(8, ptr, i): half_t ptr[i .. i+7] as a VEC(hfloat, 8) (hfloat_t lanes)
    "VSTORE_HFLOAT",  # VSTORE_HFLOAT(8, v, ptr, i): a VEC(hfloat, 8) rounded to half_t
    "VLOAD_WIDEN",  # VLOAD_WIDEN(int, 8, ptr, i): 8- or 16-bit integers ptr[i .. i+7] widened to VEC(int, 8)
    "VSPLAT",  # VSPLAT(float, 8, x): x in every element
    "VGET",  # VGET(v, i): lane i
    "VSET",  # VSET(v, i, x): lane i = x
    "VADD",  # VADD(a, b) ... elementwise
    "VSUB",
    "VMUL",
    "VDIV",
    "VFMA",  # VFMA(a, b, c): a * b + c elementwise, fused (float, double)
    "VSUM",  # VSUM(v): lanes added in order 0..N-1
    "VDOT",  # VDOT(a, b): products added in order 0..N-1
    # atomics on global and local memory, relaxed, returning the old value
    "ATOMIC_ADD",
    "ATOMIC_SUB",
    "ATOMIC_MIN",
    "ATOMIC_MAX",
    "ATOMIC_AND",
    "ATOMIC_OR",
    "ATOMIC_XOR",
    "ATOMIC_XCHG",
    "ATOMIC_CAS",  # ATOMIC_CAS(p, expected, desired)
    # complex numbers (numpy's complex64 / complex128 layout)
    "cfloat_t",
    "cdouble_t",
    "CMAKE",  # CMAKE(cfloat_t, re, im)
    "CREAL",
    "CIMAG",
    "CADD",
    "CSUB",
    "CMUL",
    "CCONJ",
    "CABS",
    "CEXP",
    # debugging
    "PRINTF",
)

#: bfloat16 (numpy has none: the ml_dtypes package's, which PyTorch's and JAX's arrays convert to)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

_DTYPE_TO_C = {
    np.dtype(np.float16): "half_t",
    BFLOAT16: "bfloat16_t",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.int8): "char",
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.int16): "short",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int32): "int",
    np.dtype(np.uint32): "unsigned int",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.uint64): "uint64_t",
    np.dtype(np.bool_): "bool_t",
    np.dtype(np.complex64): "cfloat_t",
    np.dtype(np.complex128): "cdouble_t",
}
#: the element names VEC(T, N) takes (``VEC(uint, 4)``: the type name is pasted to the lane count)
_DTYPE_TO_LANE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int32): "int",
                  np.dtype(np.uint32): "uint"}


def ctype(dtype: Any, *, lane: bool = False) -> str:
    """The neutral C type name for a numpy dtype (``float32`` -> ``float``, ``int64`` -> ``int64_t``,
    ``float16`` -> ``half_t``, bfloat16 -> ``bfloat16_t``, ``bool`` -> ``bool_t``).

    ``lane=True`` gives the element name that ``VEC(T, N)`` takes (``uint32`` -> ``uint``).
    """
    table = _DTYPE_TO_LANE if lane else _DTYPE_TO_C
    try:
        return table[np.dtype(dtype)]
    except (KeyError, TypeError):
        from .errors import UnsupportedDtypeError

        what = "vector lane type" if lane else "neutral C type"
        raise UnsupportedDtypeError(
            f"no {what} for dtype {dtype!r}; supported: {', '.join(str(d) for d in table)}"
        ) from None


#: the storage-only float types (computed in float): the suffix of their load and store words
_STORAGE_WORDS = {"half_t": "HALF", "bfloat16_t": "BF16"}


def storage_suffix(c_type: str) -> str | None:
    """``"HALF"`` for ``half_t``, ``"BF16"`` for ``bfloat16_t`` (a template reads them with ``LOAD_<suffix>``,
    ``VLOAD_<suffix>`` and writes them with ``STORE_<suffix>``, ``VSTORE_<suffix>``), None for a type
    that is read and written as it is."""
    return _STORAGE_WORDS.get(c_type)


def compute_ctype(dtype: Any) -> str:
    """The C type a kernel computes a dtype's values in: ``float`` for float16 and bfloat16, else its own."""
    c = ctype(dtype)
    return "float" if c in _STORAGE_WORDS else c


#: The atomic operations of the template language and the dtypes they take (float: add, min, max, xchg, cas).
ATOMIC_DTYPES = ("int32", "uint32", "int64", "uint64", "float32", "float64")
ATOMIC_OPS = ("add", "sub", "min", "max", "and", "or", "xor", "xchg", "cas")
_FLOAT_ATOMIC_OPS = ("add", "min", "max", "xchg", "cas")


def atomic_features(how: Any) -> dict[str, str]:
    """A device's atomics table for :attr:`DeviceInfo.features`: ``how(dtype, op)`` says ``"native"``,
    ``"emulated"`` or None (the device cannot) for each dtype of :data:`ATOMIC_DTYPES` and operation."""
    table = {}
    for dt in ATOMIC_DTYPES:
        for op in _FLOAT_ATOMIC_OPS if dt.startswith("float") else ATOMIC_OPS:
            kind = how(dt, op)
            if kind:
                table[f"atomic:{dt}:{op}"] = kind
    return table


def parse_define(text: str) -> tuple[str, Any]:
    """Parse a ``NAME=VALUE`` command-line define; VALUE is a Python literal if it parses as one."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"bad define {text!r}: write NAME=VALUE, e.g. --define TILE=16")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


# ---------------------------------------------------------------------------------------------
# Line tracing. Before Mako parses a template, every line of plain text gets a marker naming its
# file and line; the markers survive rendering (a <%def>'s body carries its own), and afterwards
# they are turned into #line directives wherever the rendered text jumps to another template line.

_MARK = "\u2063xgpu{}:{}\u2063"
_MARK_RE = re.compile("\u2063xgpu([0-9a-f]{16}):(\\d+)\u2063")
#: marker token -> template file name; a token is a digest of the name, the same in every process, so
#: that template modules compiled by an earlier process (kept in the compile cache) carry valid markers
_files: dict[str, str] = {}
_files_lock = threading.Lock()
_CONTROL = re.compile(r"\s*(%|##|<%|</%)")


def _file_index(name: str) -> str:
    token = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    with _files_lock:
        _files[token] = name
    return token


def _mark_lines(file_index: str, text: str) -> str:
    out = []
    in_block = False  # inside <% ... %> or <%! ... %> Python code
    in_text = False  # inside <%text>...</%text>, which Mako leaves alone
    expr_depth = 0  # inside a ${ ... } that spans lines
    for lineno, line in enumerate(text.split("\n"), 1):
        plain = not (in_block or in_text or expr_depth or _CONTROL.match(line))
        if plain and line.strip():
            line = _MARK.format(file_index, lineno) + line
            if line.endswith("\\") and not line.endswith("\\\\"):
                # Mako eats a backslash-newline; C macros need it: emit the backslash as an expression
                line = line[:-1] + "${'\\\\'}"
        # update the state with what this line opens and closes
        if in_block:
            if "%>" in line:
                in_block = False
        else:
            for m in re.finditer(r"<%!?(\s|$)|<%text>|</%text>", line):
                tok = m.group(0)
                if tok == "<%text>":
                    in_text = True
                elif tok == "</%text>":
                    in_text = False
                elif "%>" not in line[m.end():]:
                    in_block = True
            expr_depth += line.count("${") - (line.count("}") if expr_depth or "${" in line else 0)
            expr_depth = max(expr_depth, 0)
        out.append(line)
    return "\n".join(out)


@dataclass(frozen=True)
class RenderedSource:
    """A template rendered for one language: ``text`` carries ``#line`` directives.

    ``line_map[i]`` is the ``(template file, line)`` that line ``i + 1`` of ``text`` came from,
    or ``None`` for lines xgpu added.
    """

    text: str
    language: str
    template_name: str
    line_map: tuple[tuple[str, int] | None, ...]

    def __str__(self) -> str:
        """The rendered source itself (what the compiler sees)."""
        return self.text

    def template_line(self, lineno: int) -> tuple[str, int] | None:
        if 1 <= lineno <= len(self.line_map):
            return self.line_map[lineno - 1]
        return None

    def lines_of(self, filename: str, lineno: int) -> list[int]:
        """The rendered line numbers (1-based) that came from ``filename:lineno``."""
        return [i + 1 for i, loc in enumerate(self.line_map) if loc == (filename, lineno)]


def line_name(name: str) -> str:
    """The name a ``#line`` directive gives a template file: the path, with the characters that some
    compilers cannot read in it (``"``, ``\\``, a newline: Intel's takes no escapes there) replaced."""
    return name.replace('"', "'").replace("\\", "/").replace("\n", " ")


def _finish(rendered: str, language: str, template_name: str) -> RenderedSource:
    out: list[str] = []
    line_map: list[tuple[str, int] | None] = []
    expected: tuple[str, int] | None = None  # where the compiler thinks the next line comes from
    previous = ""
    for line in rendered.split("\n"):
        m = _MARK_RE.match(line)
        loc = (_files[m.group(1)], int(m.group(2))) if m else None
        line = _MARK_RE.sub("", line)
        continuing = previous.rstrip().endswith("\\")  # inside a multi-line macro: no #line here
        if loc is not None and loc != expected and not continuing:
            out.append(f'#line {loc[1]} "{line_name(loc[0])}"')
            line_map.append(None)
            expected = loc
        out.append(line)
        line_map.append(expected if loc is not None or expected is not None else None)
        if expected is not None:
            expected = (expected[0], expected[1] + 1)
        previous = line
    return RenderedSource("\n".join(out), language, template_name, tuple(line_map))


class KernelTemplate:
    """A kernel template: a ``.mako`` file or a string.

    ``KernelTemplate(path)`` loads a file (``<%include>`` and ``<%namespace>`` find files beside it);
    ``KernelTemplate.from_string(text, name=...)`` takes source text. Templates render with
    ``strict_undefined``: a name the template uses but nobody defined is an error.
    """

    def __init__(self, path: str | os.PathLike[str]):
        p = Path(path)
        if not p.is_file():
            raise TemplateError(f"kernel template {str(p)!r} not found (no such file)")
        self.path: Path | None = p.resolve()
        self.name = str(self.path)
        self._text: str | None = None
        self._compiled: dict = {}  # (device, defines, options) -> Program, filled by xgpu.compile

    @classmethod
    def from_string(cls, text: str, name: str = "<string>") -> KernelTemplate:
        self = cls.__new__(cls)
        self.path = None
        self.name = name
        self._text = text
        self._compiled = {}
        return self

    def __repr__(self) -> str:
        return f"KernelTemplate({self.name!r})"

    @functools.cached_property
    def _template(self) -> Template:
        directories = [str(self.path.parent)] if self.path else [os.getcwd()]
        lookup = _MarkingLookup(directories=directories)
        try:
            if self.path is not None:
                return lookup.get_template_from_file(self.path)
            return Template(
                text=self._text,
                uri=self.name,
                lookup=lookup,
                strict_undefined=True,
                preprocessor=functools.partial(_mark_lines, _file_index(self.name)),
            )
        except Exception as exc:
            raise _template_error(exc, self.name) from exc

    def render(self, prelude: str, language: str, **defines: Any) -> RenderedSource:
        """Render with ``defines`` as template variables, behind ``prelude``.

        ``index_bits`` (32 or 64) and ``atomics`` (``"auto"`` or ``"emulated"``) also set how the
        prelude defines ``index_t`` and the atomics.
        """
        template = self._template
        switches = _prelude_switches(defines, self.name)
        context = {"ctype": ctype, "compute_ctype": compute_ctype, "storage_suffix": storage_suffix, "index_bits": 32, "atomics": "auto", "subgroups": "auto", "subgroup_size": None,
                   "half_arithmetic": "auto",
                   "require": functools.partial(_require, defines.get("device"), self.name), **defines}
        try:
            body = template.render(**context)
        except Exception as exc:
            raise _template_error(exc, self.name) from exc
        _refuse_raw_lanes(body, self.name)
        body = _add_hidden_params(body, self.name, emulated_subgroups="XGPU_SUBGROUPS_EMULATED" in switches)
        body_src = _finish(body, language, self.name)
        head = f'#line 1 "<xgpu {language} prelude>"\n{switches}{prelude.rstrip()}\n'
        head_lines = head.count("\n")
        return RenderedSource(
            head + body_src.text,
            language,
            self.name,
            (None,) * head_lines + body_src.line_map,
        )


def _require(device: Any, name: str, *features: str) -> str:
    """``${require("subgroups", "atomic:float64:add")}`` in a template: a TemplateError naming the device and
    the feature when the device it renders for lacks one (``device.supports(feature)`` is False). Renders
    to nothing; with no device (``xgpu render``, offline compiles) nothing is checked."""
    if device is not None:
        missing = [f for f in features if not device.supports(f)]
        if missing:
            raise TemplateError(f"{name} requires {', '.join(missing)}, which {device.id} ({device.name}) does not "
                                f"have (device.supports({missing[0]!r}) is False)", filename=name)
    return ""


def _prelude_switches(defines: dict[str, Any], name: str) -> str:
    """The preprocessor switches the preludes read, from the defines that set them."""
    bits = defines.get("index_bits", 32)
    if bits not in (32, 64):
        raise TemplateError(f"{name}: index_bits must be 32 or 64, not {bits!r}", filename=name)
    atomics = defines.get("atomics", "auto")
    if atomics not in ("auto", "emulated"):
        raise TemplateError(
            f"{name}: atomics must be 'auto' (native where the device has them) or 'emulated' (a compare-and-swap "
            f"loop everywhere), not {atomics!r}", filename=name)
    subgroups = defines.get("subgroups", "auto")
    if subgroups not in ("auto", "native", "emulated"):
        raise TemplateError(
            f"{name}: subgroups must be 'auto' (native where the device has them, else emulated through local "
            f"memory), 'native' (refuse a device without) or 'emulated' (local memory everywhere), not "
            f"{subgroups!r}", filename=name)
    size = defines.get("subgroup_size")
    if size is not None and (type(size) is not int or not 1 <= size <= 1024):
        raise TemplateError(f"{name}: subgroup_size must be an int from 1 to 1024 (or None: the device's choice), "
                            f"not {size!r}", filename=name)
    device = defines.get("device")
    backend = defines.get("backend")
    native = subgroups != "emulated" and (
        getattr(device, "features", {}).get("subgroups") == "native" if device is not None
        else backend in _WARP_BACKENDS)
    if subgroups == "native" and device is not None and not native:
        raise TemplateError(
            f"{name} needs native subgroups (rendered with subgroups='native'), which {device.id} ({device.name}) "
            "does not have; render with subgroups='auto' to run it with subgroups emulated through local memory",
            filename=name)
    half = defines.get("half_arithmetic", "auto")
    if half not in ("auto", "native", "emulated"):
        raise TemplateError(
            f"{name}: half_arithmetic must be 'auto' (hfloat_t is half where the device computes in it, float "
            f"elsewhere), 'native' (refuse a device without) or 'emulated' (float everywhere), not {half!r}",
            filename=name)
    half_native = half != "emulated" and device is not None and bool(device.supports("float16", arithmetic=True))
    if half == "native" and device is not None and not half_native:
        raise TemplateError(
            f"{name} needs float16 arithmetic (rendered with half_arithmetic='native'), which {device.id} "
            f"({device.name}) does not have (device.supports('float16', arithmetic=True) is False: no cl_khr_fp16 "
            "or a GPU before sm_53); render with half_arithmetic='auto' to compute in float there", filename=name)
    out = f"#define XGPU_INDEX_BITS {bits}\n"
    if half_native:
        out += "#define XGPU_HALF_ARITHMETIC 1\n"
    elif half != "emulated" and device is None:  # no device: the compiler's own macros decide
        out += "#define XGPU_HALF_ARITHMETIC_AUTO 1\n"
    if atomics == "emulated":
        out += "#define XGPU_ATOMICS_EMULATED 1\n"
    if native:
        out += "#define XGPU_SUBGROUPS_NATIVE 1\n"
        if size is not None:
            offered = tuple(getattr(device, "subgroup_sizes", ()) if device is not None else (32,))
            if size not in offered:
                where = f"{device.id} ({device.name})" if device is not None else f"the {backend} backend"
                raise TemplateError(
                    f"{name}: subgroup_size={size} is not a native subgroup size of {where}, which offers "
                    f"{', '.join(map(str, offered)) or 'no choice of size'}; render with subgroups='emulated' for "
                    "any size", filename=name)
            out += f"#define XGPU_SUBGROUP_SIZE {size}\n"
    else:
        out += f"#define XGPU_SUBGROUPS_EMULATED {size or EMULATED_SUBGROUP_SIZE}\n"
    return out


#: The subgroup size of the local-memory emulation unless the template is rendered with ``subgroup_size``.
EMULATED_SUBGROUP_SIZE = 32
#: The hidden local-memory argument that the subgroup emulation exchanges values through (8 bytes a work-item).
SUBGROUP_SCRATCH = "xgpu_subgroup_scratch"
_SCRATCH_WORDS = re.compile(r"\bSUBGROUP_(?:SHUFFLE|BROADCAST|REDUCE_ADD|REDUCE_MIN|REDUCE_MAX)\b")
_KERNEL_HEAD = re.compile(r"\bKERNEL\b[^;{}()]*?(?:\([^;{}]*?\)[^;{}()]*?)?\bvoid\s+(\w+)\s*\(")
_DYNAMIC = re.compile(r"\bLOCAL_MEM_DYNAMIC\s*\(\s*((?:[^(),;]|\([^()]*\))+?)\s*,\s*([A-Za-z_]\w*)\s*\)")


def _code_mask(body: str) -> str:
    """``body`` with line markers, comments and strings blanked, every character where it was."""
    text = _MARK_RE.sub(lambda m: " " * len(m.group(0)), body)
    return _COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _closing(code: str, start: int, open_: str, close: str) -> int:
    """The index of the bracket that closes the one at ``start`` (-1: none)."""
    depth = 0
    for i in range(start, len(code)):
        if code[i] == open_:
            depth += 1
        elif code[i] == close:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _template_line(body: str, pos: int, name: str) -> tuple[str, int | None]:
    line_start = body.rfind("\n", 0, pos) + 1
    mark = _MARK_RE.match(body, line_start)
    return (_files[mark.group(1)], int(mark.group(2))) if mark else (name, None)


def _add_hidden_params(body: str, name: str, *, emulated_subgroups: bool) -> str:
    """Give each kernel a hidden parameter per ``LOCAL_MEM_DYNAMIC(T, name)`` of its body (and one for the
    subgroup emulation's scratch where its body needs it): ``LOCAL_MEM_DYNAMIC_PARAM(T, name)``, which each
    prelude turns into what its language needs (OpenCL a ``__local T*``, CUDA an offset into the block's
    dynamic shared memory). Lines are not added or removed, so the template line map still holds."""
    if "LOCAL_MEM_DYNAMIC" not in body and not (emulated_subgroups and "SUBGROUP_" in body):
        return body
    code = _code_mask(body)
    edits: list[tuple[int, int, str]] = []
    inside: list[tuple[int, int]] = []
    for m in _KERNEL_HEAD.finditer(code):
        params_end = _closing(code, m.end() - 1, "(", ")")
        brace = re.compile(r"\s*\{").match(code, params_end + 1) if params_end > 0 else None
        if brace is None:
            continue  # a declaration, or something the compiler will reject anyway
        body_start = brace.end() - 1
        body_end = _closing(code, body_start, "{", "}")
        if body_end < 0:
            continue
        inside.append((body_start, body_end))
        kernel_code = code[body_start:body_end]
        hidden: list[tuple[str, str]] = []
        for d in _DYNAMIC.finditer(kernel_code):
            if d.group(2) in (n for _, n in hidden):
                filename, lineno = _template_line(body, body_start + d.start(), name)
                raise TemplateError(f"{filename}:{lineno}: LOCAL_MEM_DYNAMIC array {d.group(2)!r} is declared twice in "
                                    f"kernel {m.group(1)!r}", filename=filename, lineno=lineno)
            hidden.append((" ".join(d.group(1).split()), d.group(2)))
        if emulated_subgroups and _SCRATCH_WORDS.search(kernel_code):
            hidden.append(("uint64_t", SUBGROUP_SCRATCH))
            edits.append((body_start + 1, body_start + 1, f" LOCAL_MEM_DYNAMIC(uint64_t, {SUBGROUP_SCRATCH});"))
        if hidden:
            empty = not code[m.end():params_end].strip() or code[m.end():params_end].strip() == "void"
            extra = ", ".join(f"LOCAL_MEM_DYNAMIC_PARAM({t}, {n})" for t, n in hidden)
            if empty:
                edits.append((m.end(), params_end, extra))
            else:
                edits.append((params_end, params_end, ", " + extra))
    for pattern, what in ((_DYNAMIC, "LOCAL_MEM_DYNAMIC"), (_SCRATCH_WORDS if emulated_subgroups else None, "")):
        if pattern is None:
            continue
        for d in pattern.finditer(code):
            if any(a < d.start() < b for a, b in inside):
                continue
            filename, lineno = _template_line(body, d.start(), name)
            word = what or d.group(0)
            fix = ("declare it in the KERNEL's body and pass the pointer on to functions as a LOCAL_MEM_ARG T* "
                   "parameter" if what else
                   "on devices without native subgroups they are emulated through the kernel's local memory: use "
                   "them in the KERNEL's body, or render with subgroups='native' to refuse such devices")
            raise TemplateError(f"{filename}:{lineno}: {word} outside a KERNEL body: {fix}", filename=filename,
                                lineno=lineno)
    for start, end, text in sorted(edits, reverse=True):
        body = body[:start] + text + body[end:]
    return body


# Lane names of OpenCL vectors (v.s0, v.xyzw, v.lo...): CUDA has none, so a template using them would
# compile on every OpenCL device and fail on the first NVIDIA one. Refused when rendering, everywhere.
_RAW_LANE = re.compile(r"([A-Za-z_]\w*|[\)\]])\s*\.\s*(s[0-9a-fA-F]+|S[0-9a-fA-F]+|lo|hi|even|odd|[xyzw]{1,4})\b")
_CUDA_BUILTINS = {"threadIdx", "blockIdx", "blockDim", "gridDim"}  # a CUDA-only branch may use these
_COMMENT_OR_STRING = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
_STRUCT_BODY = re.compile(r"\bstruct\b[^{;]*\{([^}]*)\}")


def _refuse_raw_lanes(body: str, name: str) -> None:
    code = _COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), _MARK_RE.sub("", body))
    if "." not in code:
        return
    own_members = {w for m in _STRUCT_BODY.finditer(code) for w in re.findall(r"[A-Za-z_]\w*", m.group(1))}
    marked = body.split("\n")
    for index, line in enumerate(code.split("\n")):
        for m in _RAW_LANE.finditer(line):
            if m.group(1) in _CUDA_BUILTINS or m.group(2) in own_members:
                continue
            mark = _MARK_RE.match(marked[index]) if index < len(marked) else None
            filename, lineno = (_files[mark.group(1)], int(mark.group(2))) if mark else (name, None)
            where = f"{filename}:{lineno}" if lineno else filename
            raise TemplateError(
                f"{where}: raw vector lane syntax '.{m.group(2)}' is not portable (CUDA vectors have no lanes by "
                "name, so it would fail only there): read lane i with VGET(v, i) and write it with VSET(v, i, x); "
                "see 'Writing portable kernels' in docs/templates.md",
                filename=filename, lineno=lineno)


class _MarkingLookup(TemplateLookup):
    """A TemplateLookup whose templates (included ones too) get line markers."""

    def __init__(self, directories: list[str]):
        super().__init__(directories=directories, strict_undefined=True)

    def get_template_from_file(self, path: Path) -> Template:
        # a uri relative to the lookup folder, so that <%include file="x.mako"/> finds files beside it
        return self._load_marked(str(path), "/" + path.name)

    def _load(self, filename: str, uri: str) -> Template:  # Mako's hook for files it finds itself
        return self._load_marked(filename, uri)

    def _load_marked(self, filename: str, uri: str) -> Template:
        with self._mutex:
            if uri in self._collection:
                return self._collection[uri]
            template = _cached_module_template(filename, uri, self)
            if template is None:
                template = Template(
                    filename=filename,
                    uri=uri,
                    lookup=self,
                    strict_undefined=True,
                    preprocessor=functools.partial(_mark_lines, _file_index(filename)),
                )
                _store_module_code(filename, uri, template)
            self._collection[uri] = template
            return template


# ---------------------------------------------------------------------------------------------
# Template modules in the compile cache. Mako turns a template into Python source and compiles it
# (tens of milliseconds for the GEMM's); a new process would pay that again before every first
# launch, even when the kernel's binary is cached. The compiled module's code object is kept in the
# compile cache (same folder, same trust checks and integrity header as the binaries), keyed by the
# template file's bytes, its name and uri, and the versions of Python, Mako and xgpu.


def _module_key(filename: str, uri: str) -> str | None:
    import mako

    from . import _cache

    if not _cache.enabled():
        return None
    try:
        source = Path(filename).read_bytes()
    except OSError:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        xgpu_version = version("xgpu")
    except PackageNotFoundError:
        xgpu_version = "?"
    return _cache.make_key(kind="mako-module", filename=filename, uri=uri, python=sys.version,
                           mako=mako.__version__, xgpu=xgpu_version, marker=_MARK,
                           source=hashlib.sha256(source).hexdigest())


def _cached_module_template(filename: str, uri: str, lookup: TemplateLookup) -> Template | None:
    from mako.template import ModuleTemplate

    from . import _cache

    key = _module_key(filename, uri)
    payload = _cache.load(key, counted=False) if key else None
    if payload is None:
        return None
    try:
        code = marshal.loads(payload)
        module = types.ModuleType(f"_xgpu_mako_{key}")
        exec(code, module.__dict__)  # our own compiled template, from the user-only cache folder
        template = ModuleTemplate(module, template_filename=filename, lookup=lookup)
    except Exception:  # an entry from another build of Mako: compile afresh (and overwrite it)
        return None
    _file_index(filename)  # the markers in the module name this file
    return template


def _store_module_code(filename: str, uri: str, template: Template) -> None:
    from . import _cache

    key = _module_key(filename, uri)
    if key is None:
        return
    code = compile(template.code, template.module_id, "exec")
    _cache.store(key, marshal.dumps(code), counted=False)


def _template_error(exc: Exception, name: str) -> TemplateError:
    """Turn a Mako exception into a TemplateError naming the template file and line."""
    if isinstance(exc, TemplateError):
        return exc
    filename, lineno = getattr(exc, "filename", None) or name, getattr(exc, "lineno", None)
    if lineno is None:
        try:
            tb = mako_exceptions.RichTraceback(error=exc, traceback=exc.__traceback__)
            for fname, line, _function, _text in reversed(tb.traceback):
                if fname and not fname.endswith(".py"):
                    filename, lineno = fname, line or None
                    break
        except Exception:  # pragma: no cover - RichTraceback is best effort
            pass
    hint = ""
    if isinstance(exc, NameError):
        # strict_undefined looks every name up before the first line renders (line 0): find its first use
        missing = getattr(exc, "name", None) or (re.findall(r"'(\w+)'", str(exc)) or [None])[0]
        if missing and not lineno:
            lineno = _first_use(filename, missing)
        hint = " (pass it as a define, e.g. defines={'NAME': value} or --define NAME=VALUE)"
    where = f"{filename}:{lineno}" if lineno else filename
    message = _MARK_RE.sub("", str(exc)).strip()
    return TemplateError(f"{where}: {type(exc).__name__}: {message}{hint}", filename=filename, lineno=lineno)


def _first_use(filename: str, name: str) -> int | None:
    """The first template line where ``name`` appears inside Mako code (``${...}``, ``%`` lines, ``<% %>``)."""
    try:
        text = Path(filename).read_text()
    except OSError:
        return None
    word = re.compile(r"\b" + re.escape(name) + r"\b")
    for lineno, line in enumerate(text.split("\n"), 1):
        code = " ".join(re.findall(r"\$\{(.*?)\}", line))
        if _CONTROL.match(line) or "<%" in line:
            code += " " + line
        if word.search(code):
            return lineno
    return None
