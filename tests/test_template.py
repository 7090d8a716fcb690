"""The neutral template language: preludes, rendering, #line tracing and errors that name template lines."""

from __future__ import annotations

import os
import re
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu import errors
from xgpu.errors import CompileError, TemplateError

from .conftest import ROOT, run_xgpu

LANGUAGE_BACKENDS = ["opencl", "cuda"]
NEUTRAL_TEMPLATES = sorted((ROOT / "kernels").rglob("*.mako"))
BACKEND_WORDS = ["__global__", "__kernel", "threadIdx", "blockIdx", "__syncthreads", "get_global_id",
                 "get_local_id", "barrier(", "__shared__", "__local", "__global "]


@pytest.mark.parametrize("backend", LANGUAGE_BACKENDS)
def test_prelude_defines_every_required_word(backend):
    prelude = xgpu._devices.backend(backend).prelude()
    for word in xgpu.REQUIRED_WORDS:
        defined = re.search(rf"#define\s+{word}\b|typedef\s+[\w ]+\b{word}\s*;", prelude)
        assert defined, f"the {backend} prelude does not define {word}"


def test_required_words_are_documented():
    doc = (ROOT / "docs" / "templates.md").read_text()
    for word in xgpu.REQUIRED_WORDS:
        assert f"`{word}" in doc, f"docs/templates.md does not document {word}"


@pytest.mark.parametrize("path", NEUTRAL_TEMPLATES, ids=lambda p: p.name)
def test_library_templates_use_only_neutral_words(path):
    text = path.read_text()
    for word in BACKEND_WORDS:
        assert word not in text, f"{path.name} uses the backend-specific {word!r}"


TEMPLATE = """\
<%def name="scale(expr)">(${expr} * ${factor})</%def>
KERNEL void scale_add(GLOBAL_MEM ${T}* RESTRICT y, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
% if guard:
    if (i < n)
% endif
        y[i] = ${scale("y[i]")} + 1;
}
"""


@pytest.mark.parametrize("backend", LANGUAGE_BACKENDS)
def test_render_traces_lines(backend, tmp_path):
    path = tmp_path / "scale.mako"
    path.write_text(TEMPLATE)
    rendered = xgpu.render(path, backend, {"T": "float", "factor": 3, "guard": True})
    assert f'#line 2 "{path}"' in rendered.text
    # the line after "% endif" jumps over the control lines: a new #line says so
    assert f'#line 8 "{path}"' in rendered.text
    lines = rendered.text.split("\n")
    body = [i for i, line in enumerate(lines, 1) if "y[i] = " in line][0]
    assert rendered.template_line(body) == (str(path), 8)
    assert "(y[i] * 3) + 1" in lines[body - 1]


def test_render_without_device_needs_only_backend_prelude():
    rendered = xgpu.render(TEMPLATE, "cuda", {"T": "double", "factor": 2, "guard": False})
    assert rendered.language == "cuda"
    assert 'extern "C" __global__' in rendered.text  # from the prelude
    assert "if (i < n)" not in rendered.text


def test_multiline_macro_gets_no_line_directive_inside():
    text = "#define TWICE(x) \\\n    ((x) + (x))\nKERNEL void k(GLOBAL_MEM float* y) { y[0] = TWICE(1.0f); }\n"
    rendered = xgpu.render(text, "opencl")
    macro = rendered.text[rendered.text.index("#define TWICE"):]
    first, second = macro.split("\n")[:2]
    assert first.endswith("\\") and not second.startswith("#line")


def test_render_error_names_template_line(tmp_path):
    path = tmp_path / "bad.mako"
    path.write_text("KERNEL void k(GLOBAL_MEM float* y)\n{\n    y[0] = ${1 / zero};\n}\n")
    with pytest.raises(TemplateError) as info:
        xgpu.render(path, "opencl", {"zero": 0})
    assert info.value.filename == str(path) and info.value.lineno == 3
    assert f"{path}:3" in str(info.value) and "ZeroDivisionError" in str(info.value)


def test_undefined_name_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "undef.mako"
    path.write_text("// a comment\nKERNEL void k(GLOBAL_MEM ${T}* y) { }\n")
    with pytest.raises(TemplateError, match=r"undef.mako:2: NameError: 'T' is not defined.*define"):
        xgpu.render(path, "opencl")


def test_mako_syntax_error_names_line(tmp_path):
    path = tmp_path / "syntax.mako"
    path.write_text("line one\n% if x:\nKERNEL void k() {}\n")  # no % endif
    with pytest.raises(TemplateError) as info:
        xgpu.render(path, "opencl", {"x": 1})
    assert info.value.filename == str(path) and info.value.lineno is not None


def test_missing_template_file():
    with pytest.raises(TemplateError, match="not found"):
        xgpu.render("no_such_kernel.mako", "opencl")


def test_unknown_backend_for_render():
    with pytest.raises(xgpu.errors.BackendUnavailableError, match="no backend named 'metal'"):
        xgpu.render(TEMPLATE, "metal")


def test_include_beside_template_is_traced(tmp_path):
    (tmp_path / "helpers.mako").write_text("DEVICE_FN float twice(float v)\n{\n    return v + v;\n}\n")
    main = tmp_path / "main.mako"
    main.write_text('<%include file="helpers.mako"/>\nKERNEL void k(GLOBAL_MEM float* y) { y[0] = twice(y[0]); }\n')
    rendered = xgpu.render(main, "opencl")
    assert f'#line 1 "{tmp_path / "helpers.mako"}"' in rendered.text
    assert f'#line 2 "{main}"' in rendered.text


BROKEN = """\
KERNEL void broken(GLOBAL_MEM float* RESTRICT y, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
% if True:
    if (i < n)
        y[i] = undeclared_variable * 2.0f;
% endif
}
"""


def test_compile_error_names_template_file_and_line(xgpu_device, tmp_path):
    path = tmp_path / "broken.mako"
    path.write_text(BROKEN)
    with pytest.raises(CompileError) as info:
        xgpu.compile(path, xgpu_device)
    err = info.value
    assert (err.filename, err.lineno) == (str(path), 6)
    assert f"{path}:6" in str(err)
    assert "undeclared_variable" in err.log
    assert err.backend == xgpu_device.backend and err.device == xgpu_device.id
    assert "y[i] = undeclared_variable" in err.source
    # the numbered excerpt marks the rendered line that came from template line 6
    assert re.search(r">\s+\d+ \| \s+y\[i\] = undeclared_variable \* 2.0f;\s+\[broken.mako:6\]", str(err))


def test_cuda_compile_error_names_template_line(tmp_path):
    path = tmp_path / "broken.mako"
    path.write_text(BROKEN)
    with pytest.raises(CompileError) as info:
        xgpu.compile_offline(path, "cuda", "sm_80")
    assert (info.value.filename, info.value.lineno) == (str(path), 6)


USER_KERNEL = """\
KERNEL void affine(GLOBAL_MEM ${ctype(dtype)}* RESTRICT out, GLOBAL_MEM const ${ctype(dtype)}* RESTRICT x,
                   const ${ctype(dtype)} a, const ${ctype(dtype)} b, const index_t rows, const index_t cols)
{
    const index_t c = GLOBAL_ID(0);
    const index_t r = GLOBAL_ID(1);
    if (r < rows && c < cols)
        out[r * cols + c] = FMA(a, x[r * cols + c], b);
}
"""


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (127, 33)])
def test_user_template_2d_launch_any_size(xgpu_device, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    program = xgpu.compile(USER_KERNEL, xgpu_device, defines={"dtype": np.float32})
    out = xgpu.asarray(np.full(shape, np.nan, np.float32), xgpu_device)
    event = program.affine(out, xgpu.asarray(x, xgpu_device), np.float32(1.5), np.float32(-2), shape[0], shape[1],
                           global_size=(shape[1], shape[0]))
    # the device time comes from the queue's profiling info (reading it raises where profiling is off)
    assert isinstance(event.wait().elapsed_s, float)
    np.testing.assert_allclose(out.get(), 1.5 * x.astype(np.float64) - 2, rtol=1e-6, atol=1e-6)


def test_cli_render_with_defines(tmp_path):
    path = tmp_path / "scale.mako"
    path.write_text(TEMPLATE)
    out = run_xgpu("render", str(path), "--backend", "cuda", "--define", "T=double", "-D", "factor=4",
                   "-D", "guard=False").stdout
    assert "double* RESTRICT y" in out and "(y[i] * 4)" in out and "if (i < n)" not in out
    assert 'extern "C" __global__' in out


def test_cli_render_error_is_clean(tmp_path):
    path = tmp_path / "scale.mako"
    path.write_text(TEMPLATE)
    proc = run_xgpu("render", str(path), check=False)
    assert proc.returncode == 1
    assert "TemplateError" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_xgpu("render", str(path), "--define", "bad define", check=False)
    assert proc.returncode == 1 and "NAME=VALUE" in proc.stderr


def test_ctype():
    assert xgpu.ctype(np.float32) == "float" and xgpu.ctype("float16") == "half_t"
    assert xgpu.ctype(np.complex64) == "cfloat_t"
    for unsupported in ("U4", "datetime64[s]", object, np.dtype([("a", np.float32)])):
        with pytest.raises(xgpu.errors.UnsupportedDtypeError, match="supported"):
            xgpu.ctype(unsupported)


def test_template_path_object(tmp_path):
    path = Path(tmp_path / "t.mako")
    path.write_text("KERNEL void k(GLOBAL_MEM float* y) { y[0] = 1.0f; }\n")
    assert "KERNEL void k" in xgpu.render(path).text


def test_edited_template_file_is_compiled_afresh(xgpu_device, tmp_path):
    path = tmp_path / "edit.mako"
    results = []
    for value in ("1.0f", "2.0f"):
        path.write_text(f"KERNEL void k(GLOBAL_MEM float* y) {{ y[0] = {value}; }}\n")
        y = xgpu.zeros(1, np.float32, xgpu_device)
        xgpu.compile(str(path), xgpu_device).k(y, global_size=1)
        results.append(float(y.get()[0]))
    assert results == [1.0, 2.0]


def test_same_template_object_is_not_rendered_twice(xgpu_device, monkeypatch):
    template = xgpu.KernelTemplate.from_string("KERNEL void k(GLOBAL_MEM float* y) { y[0] = ${v}; }\n")
    first = xgpu.compile(template, xgpu_device, defines={"v": "1.0f"})
    monkeypatch.setattr(xgpu.KernelTemplate, "render", lambda *a, **k: pytest.fail("rendered again"))
    assert xgpu.compile(template, xgpu_device, defines={"v": "1.0f"}) is first


def test_scalar_argument_types_are_checked_on_every_launch(xgpu_device, rng):
    # the backend tells pyopencl the scalars' types (so that it packs them itself) and keeps that per
    # kernel: a launch with another type must still be refused, and the next right one must still work
    x = rng.standard_normal((3, 5)).astype(np.float32)
    program = xgpu.compile(USER_KERNEL, xgpu_device, defines={"dtype": np.float32})
    out = xgpu.asarray(np.full(x.shape, np.nan, np.float32), xgpu_device)
    gx = xgpu.asarray(x, xgpu_device)
    for wrong in (np.float64(0.1), "1.5", gx):  # one that float32 would round, a string, a buffer
        with pytest.raises(errors.InvalidArgumentError, match="argument 2 \\(a\\) of 'affine'"):
            program.affine(out, gx, wrong, np.float32(-2), 3, 5, global_size=(5, 3))
    program.affine(out, gx, np.float32(1.5), np.float32(-2), 3, 5, global_size=(5, 3)).wait()
    np.testing.assert_allclose(out.get(), 1.5 * x.astype(np.float64) - 2, rtol=1e-6, atol=1e-6)


def test_compiler_warnings_become_one_xgpu_warning_naming_the_template_line(tmp_path):
    # the runtimes here print no warnings for valid OpenCL C, so a log of clang's form is handed in
    from xgpu import _program

    path = tmp_path / "warned.mako"
    path.write_text("KERNEL void k(GLOBAL_MEM float* y) {\n  int unused;\n  y[0] = 1.0f;\n}\n")
    dev = xgpu.devices()[0]
    rendered = xgpu.render(path, dev.backend)
    log = (f"{path}:2:7: warning: unused variable 'unused' [-Wunused-variable]\n"
           f"{path}:3:3: warning: something else\n2 warnings generated.\n")
    with pytest.warns(errors.CompilerWarning) as seen:
        _program.warn_compiler_warnings(log, rendered, dev)
    (only,) = seen
    text = str(only.message)
    assert "warned.mako:2" in text and "unused variable" in text and "1 more" in text and dev.id in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _program.warn_compiler_warnings("Compilation started\nCompilation done\nremark: 9 instructions\n",
                                        rendered, dev)  # chatter is not a warning


def test_a_real_compiler_warning_reaches_python_and_nothing_reaches_stderr(xgpu_device, tmp_path, capfd):
    path = tmp_path / "warns.mako"
    # a fresh source each run, so that the compiler really runs (a cached binary has no log)
    path.write_text(f"// {uuid.uuid4()}\nKERNEL void k(GLOBAL_MEM int* o)\n{{\n#warning planted\n    o[0] = 1;\n}}\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        program = xgpu.compile(path, xgpu_device)
    if "planted" in program.build_log:  # Mesa's rusticl keeps no warnings in its log
        (only,) = [w for w in seen if issubclass(w.category, errors.CompilerWarning)]
        assert "warns.mako:4" in str(only.message) and "planted" in str(only.message)
    broken = tmp_path / "broken.mako"
    broken.write_text(f"// {uuid.uuid4()}\nKERNEL void k(GLOBAL_MEM int* o) {{ o[0] = oops; }}\n")
    with pytest.raises(errors.CompileError, match="broken.mako:2"):
        xgpu.compile(broken, xgpu_device)
    err = capfd.readouterr().err
    assert "generated." not in err, err  # the compilers' counts ("1 warning generated.") are held back


def test_quiet_compiler_passes_on_everything_but_the_counts(capfd):
    from xgpu.backends.opencl import quiet_compiler

    with quiet_compiler():
        os.write(2, b"2 warnings and 1 error generated.\nkept: another thread's line\n1 warning generated.\n")
    assert capfd.readouterr().err == "kept: another thread's line\n"


def test_compiler_notes_are_not_warnings(tmp_path):
    from xgpu import _program

    path = tmp_path / "noted.mako"
    path.write_text("KERNEL void k(GLOBAL_MEM float* y) {\n  y[0] = 1.0f;\n}\n")
    rendered = xgpu.render(path, xgpu.devices()[0].backend)
    for note in ("input.cl:12:3: warning: loop not unrolled: the optimizer was unable to perform the requested "
                 "transformation [-Wpass-failed=transform-warning]",
                 f"warning: {path}:2:9 <Spelling=x.h:1:1>: AVX vector return of type 'float16' without "
                 "'avx512f' enabled changes the ABI [-Wpsabi]"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _program.warn_compiler_warnings(note, rendered, xgpu.devices()[0])


def test_str_of_a_rendered_source_is_its_text():
    rendered = xgpu.render("KERNEL void k(GLOBAL_MEM float* y) { y[0] = 1.0f; }", "opencl")
    assert str(rendered) == rendered.text and str(rendered).rstrip().endswith("y[0] = 1.0f; }")


def test_assert_close_prints_plain_numbers():
    from xgpu.testing import assert_close

    with pytest.raises(AssertionError) as info:
        assert_close(np.array([1.0, np.nan, 3.5], np.float32), np.array([1.0, 2.0, 3.0]), dtype=np.float32)
    message = str(info.value)
    assert "got nan, expected 2.0" in message and "np.float" not in message
