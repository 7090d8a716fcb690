"""Compiling templates for a device and launching their kernels."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _cache
from ._array import GENERATED, INDEX_MAX, Array
from ._queue import Event, ordered, pick, record
from .backend import LOCAL_ALIGN, LocalMemory
from .backend import DeviceImpl as DeviceImplBase
from .errors import (
    BackendUnavailableError,
    CompileError,
    DeviceMismatchError,
    InvalidArgumentError,
    LaunchError,
    MemoryCheckError,
    TemplateError,
    UnsupportedDtypeError,
)
from .template import SUBGROUP_SCRATCH, KernelTemplate, RenderedSource, line_name

if TYPE_CHECKING:
    from ._devices import Device
    from .backend import Diagnostic, KernelImpl, OfflineBuild, ProgramImpl
    from .hookspecs import Target

TemplateLike = KernelTemplate | str | os.PathLike


def as_template(template: TemplateLike) -> KernelTemplate:
    """A KernelTemplate from a template, a path (a Path, or a string naming a file or ending in
    ``.mako``), or template source text (any other string)."""
    if isinstance(template, KernelTemplate):
        return template
    if isinstance(template, os.PathLike):
        return KernelTemplate(template)
    if isinstance(template, str) and "\n" not in template and (
        template.endswith(".mako") or os.path.isfile(template)
    ):
        return KernelTemplate(template)
    if isinstance(template, str) and "\n" not in template and not re.search(r"[{}();]", template) and (
        os.sep in template or re.search(r"\.\w+$", template)
    ):
        # one line, no C in it, a path's shape: a file that is missing, not source text
        raise TemplateError(f"kernel template {template!r} not found (no such file; source text would hold a "
                            "KERNEL declaration)")
    if isinstance(template, str):
        return KernelTemplate.from_string(template)
    raise InvalidArgumentError(
        f"expected a KernelTemplate, a path or template text, not {type(template).__name__}"
    )


def render(template: TemplateLike, backend: str | None = None, defines: dict[str, Any] | None = None) -> RenderedSource:
    """Render ``template`` for a backend by name (by default the default device's backend); needs no
    device, only the backend's prelude."""
    from ._devices import backend as get_backend
    from ._devices import default_backend

    b = get_backend(backend or default_backend())
    defines, _ = check_build_args(defines, ())
    return as_template(template).render(b.prelude(), b.language, **{"backend": b.name, "device": None,
                                                                     **(defines or {})})


def offline_targets() -> dict[str, Target]:
    """Every offline compile target the registered backends offer, by name (``nvidia:sm_90``...)."""
    from ._plugins import call_each
    from .hookspecs import TargetRegistry

    return call_each("xgpu_register_targets", TargetRegistry()).targets


def resolve_target(target: str | None, backend: str | None = None) -> Target:
    """The registered target that ``target`` names: ``vendor:arch``, a bare architecture (``sm_90``), or
    None for ``backend``'s default target (or, with no backend named, the first backend's default)."""
    targets = offline_targets()
    mine = [t for t in targets.values() if backend is None or t.backend == backend]
    if not mine:
        offered = ", ".join(sorted(targets)) or "none"
        raise InvalidArgumentError(
            f"no offline compile target is registered{f' for backend {backend!r}' if backend else ''} "
            f"(registered: {offered}); `xgpu targets` lists them"
        )
    if target is None:
        defaults = sorted((t for t in mine if t.default), key=lambda t: (t.backend, t.name))
        if not defaults:
            raise InvalidArgumentError(f"backend {backend!r} declares no default offline target: name one with "
                                       f"target= ({', '.join(sorted(t.name for t in mine))})")
        found = defaults[0]
    else:
        matches = [t for t in mine if t.name == target or (":" not in target and t.arch == target)]
        if not matches:
            raise InvalidArgumentError(
                f"unknown offline target {target!r}; known: {', '.join(sorted(t.name for t in mine))} "
                "(`xgpu targets` lists them with their toolchains)"
            )
        found = matches[0]
    if not found.available:
        raise BackendUnavailableError(f"offline target {found.name} is unavailable: {found.reason}")
    return found


def compile_offline(
    template: TemplateLike,
    backend: str | None = None,
    target: str | None = None,
    *,
    defines: dict[str, Any] | None = None,
    options: tuple[str, ...] | list[str] = (),
) -> OfflineBuild:
    """Render ``template`` and compile it for an offline ``target`` with no device present.

    ``target`` is a registered target name (``nvidia:sm_90``; ``xgpu targets`` lists them) or a bare
    architecture (``sm_90``); without one, the default target of ``backend`` (or of the first backend
    that declares one) is used.
    """
    from ._devices import backend as get_backend

    found = resolve_target(target, backend)
    b = get_backend(found.backend)
    defines, options = check_build_args(defines, options)
    rendered = as_template(template).render(b.prelude(), b.language, **{"backend": b.name, "device": None,
                                                                         **(defines or {})})
    try:
        return b.compile_offline(rendered.text, found.arch, tuple(options))
    except NotImplementedError as exc:
        raise InvalidArgumentError(f"{exc}; pick a device and use xgpu.compile instead") from None
    except CompileError as exc:
        raise explain_compile_error(exc, rendered) from exc


def check_build_args(defines: Any, options: Any) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """``defines`` a dict of identifier -> value, ``options`` a list of strings: anything else is a clear error."""
    if defines is not None:
        if not isinstance(defines, dict):
            raise InvalidArgumentError(f"defines must be a dict of name -> value, not {type(defines).__name__}")
        bad = [k for k in defines if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise InvalidArgumentError(f"defines names must be Python identifiers (template variables), not "
                                       f"{', '.join(map(repr, bad))}")
    if isinstance(options, (str, bytes)):
        raise InvalidArgumentError(f"options must be a list of strings, e.g. {str(options).split()!r}, not one "
                                   "string (it would be split into characters)")
    try:
        options = tuple(options)
    except TypeError:
        raise InvalidArgumentError(f"options must be a list of strings, not {type(options).__name__}") from None
    bad_opts = [o for o in options if not isinstance(o, str)]
    if bad_opts:
        raise InvalidArgumentError(f"options must be strings, not {', '.join(map(repr, bad_opts))}")
    return defines, options


def compile(
    template: TemplateLike,
    device: Device | str | None = None,
    *,
    defines: dict[str, Any] | None = None,
    options: tuple[str, ...] | list[str] = (),
) -> Program:
    """Render ``template`` for ``device``'s backend and compile it there.

    Compiled programs are kept in memory per device: compiling the same source with the same
    options again costs nothing.
    """
    from ._devices import get_device

    dev = get_device(device)
    tmpl = as_template(template)
    defines, options = check_build_args(defines, options)
    # Rendering costs milliseconds of Python: a template object remembers what it compiled, per device,
    # defines and options. A new object (a path or text passed again) renders afresh, so an edited
    # file or include is never served stale.
    try:
        # the Device object, not its id: a device list rebuilt after a plugin change has new contexts
        key = (dev, tuple(sorted((defines or {}).items())), tuple(options))
        hash(key)
    except TypeError:  # a define that cannot be hashed: render every time
        key = None
    if key is not None:
        program = tmpl._compiled.get(key)
        if program is not None:
            return program
    rendered = tmpl.render(dev.prelude(), dev.language, **{"backend": dev.backend, "device": dev, **(defines or {})})
    program = compile_rendered(rendered, dev, tuple(options))
    program._build = (tmpl, dict(defines or {}), tuple(options))
    if key is not None:
        tmpl._compiled[key] = program
    return program


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*(?:"([^"\n]+)"|<([^>\n]+)>)', re.M)


def included_files(text: str, options: tuple[str, ...]) -> dict[str, str] | None:
    """SHA-256 of every file a C ``#include`` in ``text`` reaches (recursively), searched as the compiler
    searches: the including file's folder (the working folder for the program text), then each ``-I``
    folder. None when a quoted include cannot be found: such a program is compiled uncached, never stale."""
    dirs: list[str] = []
    opts = list(options)
    for i, opt in enumerate(opts):
        if opt == "-I" and i + 1 < len(opts):
            dirs.append(opts[i + 1])
        elif opt.startswith("-I") and len(opt) > 2:
            dirs.append(opt[2:])
    found: dict[str, str] = {}
    todo = [(text, os.getcwd())]
    while todo:
        source, here = todo.pop()
        for m in _INCLUDE.finditer(source):
            name = m.group(1) or m.group(2)
            where = ([here] if m.group(1) else []) + dirs
            path = next((os.path.join(d, name) for d in where if os.path.isfile(os.path.join(d, name))), None)
            if path is None:
                if m.group(1):
                    return None
                continue  # a system header of the compiler's own: its version is in the key
            path = os.path.realpath(path)
            if path in found:
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                return None
            found[path] = hashlib.sha256(data).hexdigest()
            todo.append((data.decode(errors="replace"), os.path.dirname(path)))
    return found


def cache_key(rendered_text: str, dev: Device, options: tuple[str, ...]) -> str | None:
    """The disk-cache key: everything that can change the binary (None: not cacheable)."""
    from . import __version__

    includes = included_files(rendered_text, options) if "include" in rendered_text else {}
    if includes is None:
        return None
    return _cache.make_key(
        includes=includes,
        source=rendered_text,
        options=list(options),
        backend=dev.backend,
        compiler=dev._backend.version(),
        device={k: getattr(dev, k) for k in ("name", "vendor", "platform", "type", "driver_version")},
        device_extra=dev.extra,
        xgpu=__version__,
    )


def _compile_cached(rendered: RenderedSource, dev: Device, options: tuple[str, ...]) -> ProgramImpl:
    impl_type = type(dev._impl)
    cacheable = _cache.enabled() and impl_type.program_binary is not DeviceImplBase.program_binary
    key = cache_key(rendered.text, dev, options) if cacheable else None
    if key is not None:
        blob = _cache.load(key)
        if blob is not None:
            try:
                return dev._impl.load_binary(blob, options)
            except Exception as exc:  # a binary the driver no longer takes: build from source
                warnings.warn(f"cached binary for {rendered.template_name} on {dev.id} did not load ({exc}): "
                              "rebuilding", _cache.CacheWarning, stacklevel=4)
    try:
        impl = dev._impl.compile(rendered.text, options)
    except CompileError as exc:
        raise explain_compile_error(exc, rendered, f"{dev.id} ({dev.name})") from exc
    warn_compiler_warnings(impl.log, rendered, dev)
    if key is not None:
        binary = dev._impl.program_binary(impl)
        if binary:
            _cache.store(key, binary)
    return impl


def compile_rendered(rendered: RenderedSource, dev: Device, options: tuple[str, ...]) -> Program:
    key = (rendered.text, options)
    with dev._programs_lock:
        impl = dev._programs.get(key)
    if impl is None:
        impl = _compile_cached(rendered, dev, options)
        with dev._programs_lock:
            dev._programs[key] = impl
    return Program(dev, rendered, impl)


_CONTEXT_LINES = 3
# "warning:" (clang, GCC-style), "warning #1105-D:" (NVRTC, nvcc)
_WARNING = re.compile(r"\bwarning\b(?:\s*#[\w-]+)?\s*:", re.I)
# notes about the compiler, not the kernel's code: the optimizer saying a hint (#pragma unroll) was not
# taken, and clang's -Wpsabi note that a wide vector is passed differently without AVX-512 (PoCL)
_COMPILER_NOTE = re.compile(r"loop not (?:unrolled|vectorized|interleaved)|-Wpass-failed|optimizer was unable|"
                            r"changes the ABI|-Wpsabi", re.I)


def _blamed_line(log: str, rendered: RenderedSource, kind: str) -> tuple[str, int] | None:
    """The first template file and line a compiler log names (``kind``: a regex, ``error`` or ``warning``)."""
    files = {loc[0] for loc in rendered.line_map if loc}
    where: tuple[str, int] | None = None
    first_pos = len(log) + 1
    for name in files:
        m = re.search("(?:" + re.escape(name) + "|" + re.escape(line_name(name)) + r")(?::|\()(\d+)", log)
        if m and m.start() < first_pos:
            first_pos, where = m.start(), (name, int(m.group(1)))
    if where is None:
        # a compiler that ignores #line (Oclgrind) names the rendered line: map it back
        m = re.search(rf":(\d+):\d+:\s*{kind}", log) or re.search(rf"\((\d+)\): {kind}", log)
        if m:
            where = rendered.template_line(int(m.group(1)))
    return where


def warn_compiler_warnings(log: str, rendered: RenderedSource, dev: Device) -> None:
    """The compiler's warnings as one :class:`~xgpu.errors.CompilerWarning` per program, naming the first
    template line it blames (the whole log stays on ``program.build_log``)."""
    found = [ln.strip() for ln in log.splitlines() if _WARNING.search(ln) and not _COMPILER_NOTE.search(ln)]
    if not found:
        return
    from .errors import CompilerWarning

    where = _blamed_line(log[log.find(found[0]) - 200 if log.find(found[0]) > 200 else 0:], rendered, "warning")
    at = f" at {where[0]}:{where[1]}" if where else ""
    more = f" (and {len(found) - 1} more: see program.build_log)" if len(found) > 1 else ""
    warnings.warn(CompilerWarning(f"compiling {rendered.template_name} for {dev.id}: compiler warning{at}: "
                                  f"{found[0]}{more}"), stacklevel=5)


_UNAVAILABLE_ATOMIC = re.compile(r"unavailable: (ATOMIC_[A-Z]+) on ([\w ]+?): ([^\n'\"]*?), which this device lacks")
_ATOMIC_DTYPE = {"int": "int32", "uint": "uint32", "int64_t": "int64", "uint64_t": "uint64", "float": "float32",
                 "double": "float64"}


def explain_compile_error(exc: CompileError, rendered: RenderedSource, device: str | None = None) -> CompileError:
    """Name the template file and line the compiler log blames; show the rendered source around it."""
    where = _blamed_line(exc.log, rendered, "(?:fatal )?error")
    lines = rendered.text.split("\n")
    excerpt = []
    if where:
        hits = rendered.lines_of(*where)
        if hits:
            lo, hi = max(hits[0] - _CONTEXT_LINES, 1), min(hits[-1] + _CONTEXT_LINES, len(lines))
            for i in range(lo, hi + 1):
                mark = ">" if i in hits else " "
                loc = rendered.template_line(i)
                tag = f"  [{os.path.basename(loc[0])}:{loc[1]}]" if loc else ""
                excerpt.append(f"{mark}{i:5d} | {lines[i - 1]}{tag}")
    log_lines = exc.log.strip().splitlines()
    if len(log_lines) > 40:
        log_lines = log_lines[:40] + [f"... ({len(log_lines) - 40} more lines: see .log)"]
    head = f"compiling {rendered.template_name} for {exc.device} ({exc.backend}) failed"
    if where:
        head += f" at {where[0]}:{where[1]}"
    parts = [head]
    atomic = _UNAVAILABLE_ATOMIC.search(exc.log)
    if atomic:  # the prelude's refusal of an atomic the device cannot do at all: say it first, plainly
        word, ctype, why = atomic.groups()
        query = f"atomic:{_ATOMIC_DTYPE.get(ctype, ctype)}:{word[len('ATOMIC_'):].lower()}"
        at = f" at {where[0]}:{where[1]}" if where else ""
        parts = [f"{word} on {ctype}{at} is not available on {device or exc.device}: {why}, which this device lacks "
                 f"(device.supports({query!r}) is False). Use a type the device has atomics for, or put "
                 f"${{require({query!r})}} in the template to refuse such devices when rendering", head]
    if excerpt:
        parts += ["rendered source (line | text [template:line]):", *excerpt]
    parts += ["compiler log:", *("  " + ln for ln in log_lines)]
    if "xgpu_" in exc.log and re.search(r'no operator "[^"]*" matches|has no member "', exc.log):
        parts.append("hint: vectors have + - * / (and % & | ^ << >> ~ on int, uint) on every backend, and the "
                     "portable words VADD VSUB VMUL VDIV VFMA VSUM VDOT; reach lanes with VGET(v, i) / VSET(v, i, x) "
                     "for anything else (comparisons, select): see 'Writing portable kernels' in docs/templates.md")
    if exc.options:
        parts.append(f"options: {' '.join(exc.options)}")
    return CompileError(
        "\n".join(parts),
        backend=exc.backend,
        device=exc.device,
        source=rendered.text,
        options=exc.options,
        log=exc.log,
        filename=where[0] if where else None,
        lineno=where[1] if where else None,
    )


def memory_check_error(found: list[Diagnostic], rendered: RenderedSource, device: str, kernel: str,
                       global_size: tuple[int, ...], local_size: tuple[int, ...]) -> MemoryCheckError:
    """One error for what a checking device reported: each distinct problem once, at its template line."""
    lines = rendered.text.split("\n")
    files = {loc[0] for loc in rendered.line_map if loc}
    problems: dict[tuple[str, tuple[str, int] | None], dict] = {}
    for d in found:
        kind = re.sub(r"0x[0-9a-f]+", "0x...", d.kind)  # one entry per problem, not per address
        via = ""
        if d.file is not None and d.file.startswith("<xgpu ") and d.line:
            # inside a prelude function (an atomic, a vector load...): blame the kernel's line that called it
            where, via = _prelude_caller(rendered, d.line, d.kernel)
        elif d.file is not None:  # named through a #line directive: find which template file
            name = next((f for f in files if d.file in (f, line_name(f))
                         or f.endswith(os.sep + d.file.lstrip("./"))), None)
            where = (name, d.line) if name and d.line else None
        else:
            where = rendered.template_line(d.line) if d.line else None
        entry = problems.get((kind, where))
        if entry is None:
            hits = rendered.lines_of(*where) if where else ([d.line] if d.line and d.file is None else [])
            text = lines[hits[0] - 1].strip() if hits and hits[0] <= len(lines) else ""
            text += via
            entry = problems[(kind, where)] = {
                "kind": kind, "kernel": d.kernel, "filename": where[0] if where else None,
                "lineno": where[1] if where else None, "source_line": text, "count": 0, "first": d.text,
            }
        entry["count"] += 1
    parts = [f"{device} checked kernel {kernel!r} of {rendered.template_name} (global {global_size}, local "
             f"{local_size}) and found {len(found)} problem report(s):"]
    for p in problems.values():
        at = f"{os.path.basename(p['filename'])}:{p['lineno']}" if p["filename"] else "an unknown line"
        parts.append(f"  {p['kind']} at {at} ({p['count']}x): {p['source_line']}")
    first = next(iter(problems.values()))["first"]
    parts += ["first report as the checker wrote it:", *("  " + ln for ln in first.strip().splitlines())]
    return MemoryCheckError("\n".join(parts), device=device, problems=list(problems.values()))


_PRELUDE_HEAD = re.compile(r'^#line 1 "(<xgpu \w+ prelude>)"$', re.M)
_PRELUDE_FUNCTION = re.compile(r"\b(xgpu_\w+)\s*\(")


def _prelude_caller(rendered: RenderedSource, line: int, kernel: str) -> tuple[tuple[str, int] | None, str]:
    """The template line of ``kernel`` that called the prelude function holding prelude line ``line``,
    found through the word whose macro calls that function; (None, "") where it cannot be told."""
    head = _PRELUDE_HEAD.search(rendered.text)
    if head is None:
        return None, ""
    lines = rendered.text.split("\n")
    first = rendered.text.count("\n", 0, head.start()) + 1  # the #line directive's own line, 0-based + 1
    at = first + line - 1  # 0-based index of prelude line ``line``
    function = None
    for i in range(min(at, len(lines) - 1), first - 1, -1):  # the definition this line belongs to
        text = lines[i]
        if not text.startswith((" ", "\t", "{", "}", "#", "//")):
            m = _PRELUDE_FUNCTION.search(text)
            if m:
                function = m.group(1)
                break
    if function is None:
        return None, ""
    words = set(re.findall(r"^#define (\w+)\b.*\b" + re.escape(function) + r"\b", rendered.text, re.M)) | {function}
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words))) + r")\b")
    body_start = re.search(r"\bKERNEL\b[^;{]*?\bvoid\s+" + re.escape(kernel) + r"\s*\(", rendered.text)
    start = rendered.text.count("\n", 0, body_start.start()) if body_start else 0
    found: list[tuple[str, int]] = []
    for i in range(start, len(lines)):
        loc = rendered.template_line(i + 1)
        if loc is None or loc in found:
            continue
        if body_start and i > start and re.match(r"\s*KERNEL\b", lines[i]):
            break  # the next kernel
        if pattern.search(lines[i]):
            found.append(loc)
    word = next((w for w in sorted(words) if w != function), function)
    if len(found) == 1:
        return found[0], f"  (inside {word})"
    if found:
        others = ", ".join(f"{os.path.basename(f)}:{n}" for f, n in found[1:])
        return found[0], f"  (inside {word}; or its use at {others})"
    return None, ""


class Program:
    """A compiled template on one device. Its kernels are attributes: ``program.axpy(...)``."""

    def __init__(self, device: Device, source: RenderedSource, impl: ProgramImpl):
        self.device = device
        self.source = source
        self._impl = impl
        self._kernels: dict[str, Kernel] = {}
        #: (template, defines, options) it was compiled from, to build it again with a 64-bit index_t
        self._build: tuple[KernelTemplate, dict[str, Any], tuple[str, ...]] | None = None
        self.index_bits = 64 if _wide_index(source.text) else 32

    @property
    def build_log(self) -> str:
        return self._impl.log

    def _wide(self) -> Program | None:
        """The same program built with ``index_bits=64`` (compiled once, then cached like any build)."""
        if self.index_bits == 64 or self._build is None:
            return None
        template, defines, options = self._build
        return compile(template, self.device, defines={**defines, "index_bits": 64}, options=options)

    def kernel(self, name: str) -> Kernel:
        k = self._kernels.get(name)
        if k is None:
            self.device._check_process()  # a fork's child: CUDA's lookup would fail as "no such kernel"
            try:
                k = Kernel(self, name, self._impl.kernel(name))
            except KeyError:
                raise InvalidArgumentError(
                    f"no kernel named {name!r} in {self.source.template_name} (kernels are declared with KERNEL)"
                ) from None
            self._kernels[name] = k
        return k

    def __getattr__(self, name: str) -> Kernel:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.kernel(name)


def _plain_sizes(value: Any) -> bool:
    """An int or a tuple of ints (no bools, floats or numpy scalars): sizes a launch may remember."""
    return type(value) is int or type(value) is tuple and all(type(v) is int for v in value)


def _sizes(value: Any, what: str) -> tuple[int, ...]:
    if type(value) is tuple and 1 <= len(value) <= 3 and all(type(v) is int and v >= 1 for v in value):
        return value  # the usual launch: checked without conversions
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (int(value),)
    # a string is iterable ('100' -> (1, 0, 0)) and a float truncates: refused, never guessed
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        raise InvalidArgumentError(f"{what} must be an int or a tuple of 1 to 3 ints, not {value!r}")
    sizes = tuple(int(v) for v in value)
    if not 1 <= len(sizes) <= 3 or any(s < 1 for s in sizes):
        raise InvalidArgumentError(f"{what} must have 1 to 3 dimensions, each at least 1; got {sizes}")
    return sizes


def _pow2_floor(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def choose_local_size(global_size: tuple[int, ...], limit: int, item_limits: tuple[int, ...]) -> tuple[int, ...]:
    """A work-group (block) shape for ``global_size`` that the kernel and device accept."""
    preferred = {1: (256,), 2: (16, 16), 3: (8, 8, 4)}[len(global_size)]
    local = [
        max(1, min(p, _pow2_floor(item_limits[i] if i < len(item_limits) else p), 1 << (g - 1).bit_length()))
        for i, (p, g) in enumerate(zip(preferred, global_size))
    ]
    while math.prod(local) > limit:
        i = local.index(max(local))
        local[i] //= 2
    return tuple(local)


# ---------------------------------------------------------------------------------------------
# Kernel signatures, parsed once from the rendered source: every launch is checked and converted
# against them in the core, the same way on every backend.

_SIGNATURE = re.compile(r"\bKERNEL\s+(?:REQD_WORK_GROUP_SIZE\s*\([^)]*\)\s*)?void\s+(\w+)\s*\(([^{;]*?)\)\s*(?=\{)", re.S)
_QUALIFIERS = frozenset((
    "GLOBAL_MEM", "CONSTANT_MEM", "LOCAL_MEM", "LOCAL_MEM_ARG", "RESTRICT", "const", "volatile", "restrict",
    "__restrict", "__restrict__", "__global", "__constant", "__local", "global", "constant", "local", "signed",
))
_C_TYPES = {
    "float": "float32", "double": "float64", "half": "float16", "half_t": "float16", "bfloat16_t": "bfloat16",
    "char": "int8", "unsigned char": "uint8", "uchar": "uint8", "bool_t": "bool",
    "short": "int16", "unsigned short": "uint16", "ushort": "uint16",
    "int": "int32", "unsigned int": "uint32", "unsigned": "uint32", "uint": "uint32",
    "long": "int64", "unsigned long": "uint64", "ulong": "uint64", "long long": "int64",
    "unsigned long long": "uint64", "int64_t": "int64", "uint64_t": "uint64", "int32_t": "int32", "uint32_t": "uint32",
}


class Param:
    """One kernel parameter: ``name``, ``ctype`` (as written), ``pointer``, ``dtype`` (None if unknown), and
    ``const`` (a pointer to const: the kernel only reads through it).

    ``local`` marks the hidden parameter of a ``LOCAL_MEM_DYNAMIC(T, name)`` array: not passed by the
    caller, but sized by the launch's ``local_mem={name: nbytes}``."""

    __slots__ = ("const", "ctype", "dtype", "local", "name", "pointer")

    def __init__(self, name: str, ctype: str, pointer: bool, dtype: np.dtype | None, const: bool = False,
                 local: bool = False):
        self.name, self.ctype, self.pointer, self.dtype = name, ctype, pointer, dtype
        self.const, self.local = const, local

    def __repr__(self) -> str:
        if self.local:
            return f"LOCAL_MEM_DYNAMIC({self.ctype}, {self.name})"
        return f"{self.ctype}{'*' if self.pointer else ''} {self.name}"


def _split_params(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur))
    return out


def _wide_index(text: str) -> bool:
    """Whether a rendered source was built with a 64-bit index_t (the substring test first: a regular
    expression over a whole program takes a millisecond)."""
    return "#define XGPU_INDEX_BITS 64" in text and re.search(r"^#define XGPU_INDEX_BITS 64\b", text, re.M) is not None


def _kernel_declarations(text: str) -> Iterator[re.Match[str]]:
    """_SIGNATURE's matches, tried only where the word KERNEL occurs (a search from every position of a
    100 kB program took 4 ms of a process's first launch)."""
    pos = text.find("KERNEL")
    while pos != -1:
        m = _SIGNATURE.match(text, pos)
        if m is not None:
            yield m
            pos = text.find("KERNEL", m.end())
        else:
            pos = text.find("KERNEL", pos + 6)


@functools.lru_cache(maxsize=512)
def parse_signatures(text: str) -> dict[str, tuple[Param, ...]]:
    """Every ``KERNEL void name(...)`` of a rendered source: its parameters, in order."""
    bits64 = _wide_index(text)
    types = dict(_C_TYPES, index_t="int64" if bits64 else "int32", uindex_t="uint64" if bits64 else "uint32")
    found: dict[str, tuple[Param, ...]] = {}
    for m in _kernel_declarations(text):
        params_text = "\n".join(ln for ln in m.group(2).split("\n") if not ln.lstrip().startswith("#"))
        params_text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", params_text, flags=re.S)
        params: list[Param] = []
        for raw in _split_params(params_text):
            raw = raw.strip()
            if not raw or raw == "void":
                continue
            hidden = re.fullmatch(r"LOCAL_MEM_DYNAMIC_PARAM\s*\((.*),\s*(\w+)\s*\)", raw, re.S)
            if hidden:
                ctype = " ".join(hidden.group(1).split())
                dtype = types.get(ctype)
                params.append(Param(hidden.group(2), ctype, True, np.dtype(dtype) if dtype else None, local=True))
                continue
            pointer = "*" in raw or "[" in raw
            words = re.findall(r"[A-Za-z_]\w*(?:\s*\([^)]*\))?", raw.replace("*", " "))
            name = words[-1] if words else "?"
            type_words = [w for w in words[:-1] if w not in _QUALIFIERS]
            ctype = " ".join(type_words)
            dtype = types.get(ctype)
            const = pointer and re.search(r"\bconst\b", re.split(r"[*\[]", raw)[0]) is not None
            params.append(Param(name, ctype, pointer, np.dtype(dtype) if dtype else None, const))
        found[m.group(1)] = tuple(params)
    return found


def convert_scalar(value: Any, param: Param, where: str) -> Any:
    """``value`` as the parameter's numpy type, exactly; a lossy or impossible conversion names the parameter."""
    want = param.dtype
    assert want is not None, "called for parameters of a known type only"
    if type(value) is want.type:
        return value
    if isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{where} is a bool: pass {want.name}(0 or 1)")
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"{where} takes a {param.ctype} ({want.name}), not a {type(value).__name__}")
    if want.kind in "iu" and isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise InvalidArgumentError(f"{where} takes a {param.ctype} ({want.name}); {value!r} is not a whole number")
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = want.type(value)
    except (OverflowError, ValueError):
        converted = None
    # compared as Python numbers: numpy compares np.float32(0.1) == 0.1 in float32 (True)
    if converted is None:
        exact = False
    elif isinstance(value, (int, np.integer)):
        exact = bool(np.isfinite(converted)) and int(converted) == int(value)
    else:
        exact = float(converted) == float(value) or (np.isnan(converted) and np.isnan(value))
    if not exact:
        if want.kind in "iu":
            info = np.iinfo(want)
            bits = f"{info.bits}-bit"
            raise InvalidArgumentError(
                f"{where} = {value!r} does not fit {param.ctype} ({want.name}, {bits}: {info.min} to {info.max})"
                + ("; index_t is 32-bit unless the template is rendered with index_bits=64" if "index" in param.ctype
                   else "")
            )
        raise InvalidArgumentError(
            f"{where} = {value!r} cannot be passed as {param.ctype} ({want.name}) without changing its value; "
            f"pass np.{want.name}({value!r}) to round it on purpose"
        )
    return converted


def _stage_views(args: tuple[Any, ...], params: tuple[Param, ...] | None) -> tuple[tuple[Any, ...], list]:
    """A kernel's pointer gets an array's first element. A view that is not contiguous from the start of
    its memory (an offset, gaps, another order) has no such pointer: the kernel gets a contiguous copy
    instead, and what it wrote is copied back into the view after it (not for ``const`` pointers)."""
    out, staged = list(args), []
    for i, a in enumerate(args):
        if isinstance(a, Array) and not a._whole:
            out[i] = a.copy()
            if params is None or not params[i].const:
                staged.append((a, out[i]))
    return tuple(out), staged


def _required_local_size(text: str, name: str) -> tuple[int, int, int] | None:
    m = re.search(r"REQD_WORK_GROUP_SIZE\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\s*void\s+" + re.escape(name) + r"\s*\(",
                  text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


class Kernel:
    """One kernel of a program. Call it with its arguments and ``global_size=``.

    Arguments are xgpu Arrays (on the program's device) and scalars: numpy scalars keep their
    type; a Python int becomes an ``index_t`` (int32). ``global_size`` need not be a multiple of
    ``local_size``: it is rounded up, and the kernel must check its ids against its real size.
    """

    def __init__(self, program: Program, name: str, impl: KernelImpl):
        self.program = program
        self.name = name
        self._impl = impl
        self.max_work_group_size = min(impl.max_work_group_size(), program.device.max_work_group_size)
        #: The (x, y, z) work-group shape the kernel declares with REQD_WORK_GROUP_SIZE, or None.
        self.required_local_size = _required_local_size(program.source.text, name)
        #: The parameters parsed from the rendered source (None when the declaration could not be read).
        self.params: tuple[Param, ...] | None = parse_signatures(program.source.text).get(name)
        self._signature = None if self.params is None else tuple(p for p in self.params if not p.local)
        self._hidden_params = any(p.local for p in self.params or ())
        self._what_short = f"kernel {name!r}"
        self._what = f"kernel {name!r} on {program.device.id}"
        #: (global_size, local_size, local_mem) -> (local size, padded global size, hidden local arrays):
        #: a launch like an earlier one skips the checks (a kernel is mostly launched over a few shapes)
        self._geometries: dict[Any, tuple[tuple[int, ...], tuple[int, ...], dict[str, LocalMemory]]] = {}

    @property
    def signature(self) -> tuple[Param, ...] | None:
        """The parameters the caller passes, in order (the hidden ones of ``LOCAL_MEM_DYNAMIC`` arrays left
        out: see :attr:`local_arrays`), parsed from the rendered source; None when it could not be read."""
        return self._signature

    @property
    def local_arrays(self) -> tuple[str, ...]:
        """The names of the kernel's ``LOCAL_MEM_DYNAMIC`` arrays, which a launch sizes with ``local_mem=``."""
        return tuple(p.name for p in self.params or () if p.local and p.name != SUBGROUP_SCRATCH)

    def __repr__(self) -> str:
        return f"<xgpu.Kernel {self.name} on {self.program.device.id}>"

    def __call__(self, *args: Any, global_size: Any, local_size: Any = None,
                 local_mem: dict[str, int] | None = None, queue: Any = None, wait_for: Any = None) -> Event:
        """Launch on ``queue`` (an :class:`xgpu.Queue` of the program's device; by default the one a
        ``with queue:`` block chose, else the device's default queue), after the events of ``wait_for``
        (events of other devices are waited for on the host first). Returns the launch's Event."""
        dev = self.program.device
        chosen = pick(dev, queue, self._what_short)
        if chosen is not None and queue is not None:
            with chosen:  # the copies a launch may need (views staged) go to the same queue
                return self(*args, global_size=global_size, local_size=local_size, local_mem=local_mem,
                            wait_for=wait_for)
        lsize, padded, hidden = self._geometry(global_size, local_size, local_mem)
        staged: list[tuple[Array, Array]] = []
        fast = self._plain_args(args, hidden) if self.program.index_bits == 64 or math.prod(padded) <= INDEX_MAX \
            else None
        if fast is not None:  # whole arrays and scalars of the parameters' types: nothing to convert or stage
            converted, blocks = fast
        else:
            if self.program.index_bits == 32 and (
                math.prod(padded) > INDEX_MAX or any(a.size > INDEX_MAX for a in args if isinstance(a, Array))
            ):
                # too large for a 32-bit index_t: launch the same kernel built with a 64-bit one
                wide = self.program._wide()
                if wide is None:
                    raise InvalidArgumentError(
                        f"kernel {self.name!r} was built with a 32-bit index_t, too small for global size {padded} "
                        "or an array of more than 2**31-1 elements; compile it with defines={'index_bits': 64}"
                    )
                return wide.kernel(self.name)(*args, global_size=global_size, local_size=local_size,
                                              local_mem=local_mem, wait_for=wait_for)
            params = self.signature
            if params is not None and len(args) != len(params):
                raise InvalidArgumentError(
                    f"kernel {self.name!r} takes {len(params)} argument(s) ({', '.join(map(repr, params))}), "
                    f"got {len(args)}"
                )
            if any(isinstance(a, Array) and not a._whole for a in args):
                if wait_for is not None:  # the staging copies read the views too: their producers end first
                    ordered(dev, None, (), wait_for, self._what_short)  # (checks the events)
                    for e in ([wait_for] if isinstance(wait_for, Event) else wait_for):
                        e.wait()
                    wait_for = None
                args, staged = _stage_views(args, params)
            converted = [self._arg(a, i, params[i] if params is not None else None) for i, a in enumerate(args)]
            blocks = [a._block for a in args if isinstance(a, Array)]
            if hidden:
                given = iter(converted)
                converted = [hidden[p.name] if p.local else next(given) for p in self.params or ()]
        event = self._enqueue(chosen, converted, blocks, padded, lsize, wait_for)
        if staged:
            for view, contiguous in staged:  # queued after the kernel: the device runs work in order
                GENERATED.elementwise.copy_into(view, contiguous)
        return event

    def _enqueue(self, chosen: Any, converted: list[Any], blocks: list[Any], padded: tuple[int, ...],
                 lsize: tuple[int, ...], wait_for: Any = None) -> Event:
        """The launch itself, its arguments converted: after what it must wait for, on ``chosen`` (a queue, or
        None for the device's default one); Oclgrind's findings raised."""
        dev = self.program.device
        deps = ordered(dev, chosen, blocks, wait_for, self._what_short)
        if chosen is None and not deps:
            impl = dev._impl.launch(self._impl, padded, lsize, converted)
        else:
            impl = dev._impl.enqueue_launch(None if chosen is None else chosen._impl, self._impl, padded, lsize,
                                            converted, deps)
        record(chosen, blocks, impl)
        event = Event(impl, self._what, dev, chosen or dev.default_queue)
        dev._last_kernel = self.name  # named by synchronize(timeout=)
        if dev.checks_memory:
            event.wait()
            found = dev._impl.take_diagnostics()
            if found:
                raise memory_check_error(found, self.program.source, dev.id, self.name, padded, lsize)
        return event

    def bind(self, *args: Any, global_size: Any, local_size: Any = None,
             local_mem: dict[str, int] | None = None) -> BoundLaunch:
        """A launch with everything but its arrays given, checked once: ``args`` holds ``None`` where an array
        goes. Calling the result with the arrays (in the order of those ``None``) launches as the kernel
        itself would, on the queue a ``with queue:`` block chose, else the device's default queue. For a
        library's hot path: a small GEMM's host time is mostly its launch's Python."""
        return BoundLaunch(self, args, global_size, local_size, local_mem)

    def _geometry(self, global_size: Any, local_size: Any, local_mem: Any):
        """(local size, padded global size, hidden local arrays) of a launch, checked; remembered for
        launches of hashable sizes (tuples and ints, a dict of ints for local_mem)."""
        key = found = None
        # only plain ints are remembered: True == 1 and 2.0 == 2 as keys, but neither is a size
        if _plain_sizes(global_size) and (local_size is None or _plain_sizes(local_size)) and (
                local_mem is None or type(local_mem) is dict and all(type(v) is int for v in local_mem.values())):
            key = (global_size, local_size, None if local_mem is None else tuple(local_mem.items()))
            found = self._geometries.get(key)
            if found is not None:
                return found
        dev = self.program.device
        gsize = _sizes(global_size, "global_size")
        if local_size is None:
            lsize = (self._required_shape(gsize, None) if self.required_local_size is not None
                     else choose_local_size(gsize, self.max_work_group_size, dev.max_work_item_sizes))
        else:
            lsize = _sizes(local_size, "local_size")
            if len(lsize) != len(gsize):
                raise InvalidArgumentError(f"local_size {lsize} and global_size {gsize} differ in dimensions")
            if self.required_local_size is not None:  # the declared shape is the fix to name, before any limit
                lsize = self._required_shape(gsize, lsize)
            if math.prod(lsize) > self.max_work_group_size:
                raise LaunchError(
                    f"work-group (block) of {lsize} = {math.prod(lsize)} work-items is larger than kernel "
                    f"{self.name!r} allows on {dev.id}: at most {self.max_work_group_size}"
                )
            for i, (ls, lim) in enumerate(zip(lsize, dev.max_work_item_sizes)):
                if ls > lim:
                    raise LaunchError(f"local_size[{i}] = {ls} exceeds {dev.id}'s limit of {lim} in that dimension")
        padded = tuple(-(-g // ls) * ls for g, ls in zip(gsize, lsize))
        found = (lsize, padded, self._local_memory(local_mem, lsize))
        if key is not None:
            if len(self._geometries) >= 256:  # a kernel launched over ever new sizes: forget the old ones
                self._geometries.clear()
            self._geometries[key] = found
        return found

    def _plain_args(self, args: tuple[Any, ...], hidden: dict[str, LocalMemory]) -> tuple[list[Any], list[Any]] | None:
        """(the backend's arguments, with the ``hidden`` local arrays in their places; the arrays' memory
        blocks) when every argument is what its parameter declares as it is: a whole array of the kernel's
        device and the pointer's dtype, of at most 2**31-1 elements, or a numpy scalar of the parameter's
        type. None otherwise (the launch then checks, converts or stages each one)."""
        params = self._signature
        if params is None or len(args) != len(params):
            return None
        if hidden:
            given = iter(args)
            args = tuple(None if p.local else next(given) for p in self.params or ())
            params = self.params or ()
        dev = self.program.device
        out: list[Any] = []
        blocks: list[Any] = []
        for a, p in zip(args, params):
            if p.local:
                out.append(hidden[p.name])
            elif p.pointer:
                if not _as_it_is(a, dev, p.dtype):
                    return None
                block = a._block
                out.append(block.impl)
                blocks.append(block)
            elif p.dtype is not None and type(a) is p.dtype.type:
                out.append(a)
            else:
                return None
        return out, blocks

    def _local_memory(self, local_mem: Any, lsize: tuple[int, ...]) -> dict[str, LocalMemory]:
        """The hidden arguments of the kernel's launch-sized local arrays, checked against the device."""
        if local_mem is None and not self._hidden_params:
            return {}
        dev = self.program.device
        names = self.local_arrays
        if local_mem is None:
            local_mem = {}
        if not isinstance(local_mem, dict):
            raise InvalidArgumentError(f"local_mem must be a dict of array name -> bytes, e.g. "
                                       f"{{{(names or ('tile',))[0]!r}: 4096}}, not {type(local_mem).__name__}")
        unknown = [k for k in local_mem if k not in names]
        if unknown:
            declared = ", ".join(names) if names else "none"
            raise InvalidArgumentError(
                f"local_mem names {', '.join(map(repr, unknown))}, which kernel {self.name!r} does not declare with "
                f"LOCAL_MEM_DYNAMIC(type, name) (its launch-sized local arrays: {declared})")
        missing = [n for n in names if n not in local_mem]
        if missing:
            raise InvalidArgumentError(
                f"kernel {self.name!r} declares launch-sized local arrays {', '.join(map(repr, missing))} "
                f"(LOCAL_MEM_DYNAMIC): give each its size in bytes, local_mem={{{missing[0]!r}: nbytes, ...}}")
        hidden: dict[str, LocalMemory] = {}
        for p in self.params or ():
            if not p.local:
                continue
            if p.name == SUBGROUP_SCRATCH:  # the subgroup emulation's exchange: 8 bytes a work-item
                hidden[p.name] = LocalMemory(p.name, 8 * math.prod(lsize))
                continue
            nbytes = local_mem[p.name]
            if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, (bool, np.bool_)) or nbytes < 1:
                raise InvalidArgumentError(f"local_mem[{p.name!r}] must be a number of bytes (an int of at least 1), "
                                           f"not {nbytes!r}")
            if p.dtype is not None and nbytes % p.dtype.itemsize:
                raise InvalidArgumentError(
                    f"local_mem[{p.name!r}] = {nbytes} bytes is not a whole number of {p.ctype} "
                    f"({p.dtype.itemsize} bytes each): pass count * {p.dtype.itemsize}")
            hidden[p.name] = LocalMemory(p.name, int(nbytes))
        if hidden:
            static = self._impl.static_local_mem_bytes()
            total = sum(-(-m.nbytes // LOCAL_ALIGN) * LOCAL_ALIGN for m in hidden.values()) + static
            if total > dev.local_mem_bytes:
                parts = ", ".join(f"{m.name}: {m.nbytes}" for m in hidden.values())
                raise LaunchError(
                    f"kernel {self.name!r} needs {total} bytes of local (shared) memory per work-group ({parts}"
                    f"{f', its own arrays: {static}' if static else ''}; each array rounded up to {LOCAL_ALIGN} "
                    f"bytes), more than the {dev.local_mem_bytes} that {dev.id} ({dev.name}) has: ask for less "
                    "local_mem (or a smaller work-group)")
        return hidden

    def _required_shape(self, gsize: tuple[int, ...], asked: tuple[int, ...] | None) -> tuple[int, ...]:
        required = self.required_local_size or ()
        shape = required[: len(gsize)]
        if any(r != 1 for r in required[len(gsize):]) or (asked is not None and asked != shape):
            raise LaunchError(
                f"kernel {self.name!r} declares REQD_WORK_GROUP_SIZE{required}: launch it with local_size={shape} "
                f"(or none) over {len(gsize)} dimension(s), not {asked if asked is not None else gsize}"
            )
        return shape

    def _arg(self, a: Any, i: int, param: Param | None = None) -> Any:
        dev = self.program.device
        if param is not None:
            # the common cases first, with no message built: a launch converts every argument
            if param.dtype is not None and not isinstance(a, Array) and type(a) is param.dtype.type \
                    and not param.pointer:
                return a
            if param.pointer and isinstance(a, Array) and a.dtype == param.dtype and a.device is dev:
                return a._buffer
            where = f"argument {i} ({param.name}) of {self.name!r}"
            if param.pointer and not isinstance(a, Array):
                raise InvalidArgumentError(f"{where} is a pointer ({param!r}): pass an xgpu Array, not a "
                                           f"{type(a).__name__}")
            if not param.pointer and isinstance(a, Array):
                raise InvalidArgumentError(f"{where} is a {param.ctype} scalar: pass a number, not an Array")
            if param.pointer and param.dtype is not None and a.dtype != param.dtype:
                raise UnsupportedDtypeError(
                    f"{where} points to {param.ctype} ({param.dtype.name}), but the array passed holds {a.dtype}; "
                    f"convert it with xgpu.asarray(x, dtype=np.{param.dtype.name})"
                )
            if not param.pointer and param.dtype is not None:
                return convert_scalar(a, param, where)
        if isinstance(a, Array):
            if a.device is not dev:
                raise DeviceMismatchError(
                    f"argument {i} of {self.name!r} lives on {a.device.id}, but the kernel was compiled for {dev.id}"
                )
            return a._buffer
        if isinstance(a, (bool, np.bool_)):
            raise InvalidArgumentError(f"argument {i} of {self.name!r} is a bool: pass np.int32(0 or 1)")
        if isinstance(a, np.generic):
            return a
        if isinstance(a, int) and self.program.index_bits == 64:
            return np.int64(a)
        if isinstance(a, int):
            if not -(2**31) <= a <= INDEX_MAX:
                raise InvalidArgumentError(
                    f"argument {i} of {self.name!r} = {a} does not fit index_t (int32); pass a numpy scalar of the "
                    "kernel's type"
                )
            return np.int32(a)
        if isinstance(a, float):
            raise InvalidArgumentError(
                f"argument {i} of {self.name!r} is a Python float: pass np.float32({a}) or np.float64({a}) to say "
                "which the kernel takes"
            )
        raise InvalidArgumentError(
            f"argument {i} of {self.name!r} is a {type(a).__name__}: kernels take xgpu Arrays and numpy scalars"
        )


def _as_it_is(a: Any, device: Any, dtype: Any) -> bool:
    """Whether a launch takes ``a`` for a pointer to ``dtype`` on ``device`` as it is: a whole array of that
    device and dtype, of at most 2**31-1 elements (anything else is checked, converted or staged)."""
    return type(a) is Array and a.device is device and a.dtype == dtype and a._whole and a.size <= INDEX_MAX


class BoundLaunch:
    """:meth:`Kernel.bind`'s result: the kernel's scalars converted and its sizes checked once; each call
    passes its arrays. Arrays the fast path cannot take as they are (views, another dtype or device) take
    the kernel's own checked launch."""

    __slots__ = ("kernel", "args", "sizes", "slots", "converted", "dtypes", "geometry")

    def __init__(self, kernel: Kernel, args: tuple[Any, ...], global_size: Any, local_size: Any, local_mem: Any):
        self.kernel, self.args = kernel, args
        self.sizes = {"global_size": global_size, "local_size": local_size, "local_mem": local_mem}
        self.slots: tuple[int, ...] | None = None  # where the arrays go in the converted arguments
        lsize, padded, hidden = kernel._geometry(global_size, local_size, local_mem)
        self.geometry = (padded, lsize)
        params = kernel.params
        if kernel._signature is None or params is None or len(args) != len(kernel._signature) or (
                kernel.program.index_bits == 32 and math.prod(padded) > INDEX_MAX) or kernel.program.device.checks_memory:
            return  # every call takes the checked launch
        given = iter(args)
        converted: list[Any] = []
        slots, dtypes = [], []
        for p in params:
            if p.local:
                converted.append(hidden[p.name])
                continue
            a = next(given)
            if a is None and p.pointer:
                slots.append(len(converted))
                dtypes.append(p.dtype)
                converted.append(None)
            elif not p.pointer and p.dtype is not None and type(a) is p.dtype.type:
                converted.append(a)
            else:
                return
        self.slots, self.converted, self.dtypes = tuple(slots), converted, tuple(dtypes)

    def __call__(self, *arrays: Array) -> Event:
        kernel = self.kernel
        slots = self.slots
        if slots is not None and len(arrays) == len(slots):
            dev = kernel.program.device
            chosen = pick(dev, None, kernel._what_short)
            converted = self.converted.copy()
            blocks = []
            for at, a, dtype in zip(slots, arrays, self.dtypes):
                if not _as_it_is(a, dev, dtype):
                    break
                block = a._block
                converted[at] = block.impl
                blocks.append(block)
            else:
                return kernel._enqueue(chosen, converted, blocks, *self.geometry)
        wanted = sum(a is None for a in self.args)
        if len(arrays) != wanted:
            raise InvalidArgumentError(f"{kernel._what_short} was bound with {wanted} array(s) to pass, got {len(arrays)}")
        given = iter(arrays)
        return kernel(*[next(given) if a is None else a for a in self.args], **self.sizes)
