"""conv2d: parity with a float64 reference (PyTorch semantics) on every device, both layouts, every dtype."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import xgpu
from xgpu.errors import DeviceMismatchError, InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels import conv2d as conv_module
from xgpu.kernels.conv2d import all_igemm_variants, conv2d, fit_columns, igemm_config, plan
from xgpu.kernels.conv2d.tuning import ConvTraits
from xgpu.kernels.gemm.tuning import GemmConfig
from xgpu.reference import conv2d_reference
from xgpu.testing import assert_close, poison

DTYPES = [np.float32, np.float64, np.float16, xgpu.bfloat16]

# (name, N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
CASES = [
    ("3x3-pad1", 2, 16, 9, 11, 12, 3, 3, 1, 1, 1, 1, True),
    ("first-layer-7x7-s2", 1, 3, 17, 13, 8, 7, 7, 2, 3, 1, 1, True),
    ("1x1", 2, 13, 5, 7, 17, 1, 1, 1, 0, 1, 1, False),
    ("1x1-as-gemm", 2, 40, 5, 7, 17, 1, 1, 1, 0, 1, 1, False),
    ("1x1-bias", 2, 40, 6, 5, 9, 1, 1, 1, 0, 1, 1, True),
    ("1x1-stride2", 1, 36, 7, 6, 11, 1, 1, 2, 0, 1, 1, False),
    ("depthwise", 2, 8, 10, 9, 8, 3, 3, 1, 1, 1, 8, True),
    ("depthwise-x2", 1, 6, 7, 7, 12, 3, 3, 2, 1, 1, 6, False),
    ("groups2-asym", 2, 16, 12, 10, 10, 3, 2, (2, 1), (1, 2), (2, 1), 2, True),
    ("same-even-kernel", 1, 9, 8, 11, 9, 4, 2, 1, "same", 1, 1, True),
    ("same-dilated", 1, 12, 9, 9, 8, 3, 3, 1, "same", 2, 1, False),
    ("valid-nonsquare", 2, 10, 6, 13, 7, 2, 5, 1, "valid", 1, 1, True),
    ("stride3-pad-pair", 1, 11, 14, 9, 20, 3, 3, 3, (0, 2), 1, 1, False),
    ("whole-tiles", 1, 16, 12, 12, 64, 3, 3, 1, 1, 1, 1, True),
    ("kernel-equals-input", 2, 8, 3, 3, 5, 3, 3, 1, 0, 1, 1, True),
    # an RGB stem (27 products per output: the implicit GEMM, its column tile cut to 6 channels), the
    # direct kernel with one group (one input channel; 1x3: 9 products), and with stride, padding and
    # dilation that differ between rows and columns
    ("rgb-3x3", 2, 3, 11, 9, 6, 3, 3, 1, 1, 1, 1, True),
    ("gray-3x3-direct", 2, 1, 11, 9, 6, 3, 3, 1, 1, 1, 1, True),
    ("rgb-1x3-direct", 1, 3, 9, 8, 7, 1, 3, 1, (0, 1), 1, 1, True),
    ("depthwise-dilated-asym", 1, 4, 9, 12, 4, 3, 3, (1, 2), (2, 1), (2, 1), 4, True),
    # more output channels than one vector of them and a partial one (the direct kernel on PoCL)
    ("depthwise-c20", 1, 20, 7, 6, 20, 3, 3, 1, 1, 1, 20, True),
    ("rgb-3x3-s2-k19", 1, 3, 9, 8, 19, 3, 3, 2, 1, 1, 1, False),
    # grouped layers with few output channels per group (the column tile cut to Kg: 5, 16)
    ("groups4-kg5", 2, 20, 9, 10, 20, 3, 3, 1, 1, 1, 4, True),
    ("groups2-kg16", 1, 32, 7, 9, 32, 3, 3, 1, 1, 1, 2, False),
    ("groups3-kg7-s2-dil", 1, 15, 11, 13, 21, 3, 3, 2, 2, 2, 3, False),
    # fewer pixels than a tile of rows, and a few more than one (the last tile shifted back)
    ("few-pixels", 1, 16, 3, 3, 40, 3, 3, 1, 1, 1, 1, True),
    ("rows-past-a-tile", 1, 12, 9, 15, 9, 3, 3, 1, 1, 1, 1, False),
    # 1x1 layers with a stride or padding: the product on a copy of the pixels they read
    ("1x1-stride2-pad1", 2, 20, 9, 7, 17, 1, 1, 2, 1, 1, 1, False),
    ("1x1-stride-asym", 1, 36, 7, 10, 11, 1, 1, (3, 2), 0, 1, 1, False),
    # depthwise with column strides (NCHW rows stored as stride phases on CPUs), odd widths, and rows
    # long enough for pixel vectors plus a partial one
    ("depthwise-s2-odd", 2, 5, 13, 15, 5, 3, 3, 2, 1, 1, 5, True),
    ("depthwise-s3-dil2", 1, 4, 14, 17, 4, 3, 3, (1, 3), 1, 2, 4, False),
    ("depthwise-s2-valid-5x5", 1, 3, 9, 12, 3, 5, 5, 2, 0, 1, 3, True),
    ("depthwise-s2-wide", 1, 2, 6, 41, 2, 3, 3, 2, 1, 1, 2, False),
    ("depthwise-x2-s2", 1, 3, 8, 19, 6, 3, 3, 2, 1, 1, 3, True),
]


def need(device, dtype):
    if not device.supports(dtype):
        pytest.skip(f"{np.dtype(dtype)} unsupported on {device.id} ({device.name})")


def pads_of(padding, r, s, dilation):
    dh, dw = dilation
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        th, tw = dh * (r - 1), dw * (s - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
    return (ph, ph, pw, pw)


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def run_case(device, case, dtype, layout, rng, config=None):
    name, n, c, h, w, k, r, s, stride, padding, dilation, groups, has_bias = case
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(dtype)
    wt = rng.uniform(-1, 1, (k, c // groups, r, s)).astype(dtype)
    b = rng.uniform(-1, 1, k).astype(dtype) if has_bias else None
    ref = conv2d_reference(x, wt, b, pair(stride), pads_of(padding, r, s, pair(dilation)), pair(dilation), groups)
    if layout == "NHWC":
        gx, gw = xgpu.asarray(x.transpose(0, 2, 3, 1), device), xgpu.asarray(wt.transpose(2, 3, 1, 0), device)
    else:
        gx, gw = xgpu.asarray(x, device), xgpu.asarray(wt, device)
    gb = xgpu.asarray(b, device) if has_bias else None
    y = conv2d(gx, gw, gb, stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout,
               config=config)
    got = y.get()
    if layout == "NHWC":
        got = got.transpose(0, 3, 1, 2)
    assert_close(got, ref, dtype=dtype, terms=(c // groups) * r * s, what=name)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_conv2d_matches_reference(xgpu_device, case, dtype, layout, rng):
    need(xgpu_device, dtype)
    run_case(xgpu_device, case, dtype, layout, rng)


VARIANTS = all_igemm_variants()


def _picks(device, params) -> bool:
    cfg = igemm_config(device, np.dtype(params["dtype"]))
    return params["config"] in (cfg, fit_columns(cfg, 8), fit_columns(cfg, 32))


@pytest.mark.home_devices.with_args(_picks)
@pytest.mark.parametrize("dtype,config", VARIANTS, ids=[f"{np.dtype(d)}-{c.label}" for d, c in VARIANTS])
def test_every_implicit_gemm_variant(xgpu_device, dtype, config, rng):
    need(xgpu_device, dtype)
    tx, ty = config.local_size
    if tx * ty > xgpu_device.max_work_group_size:
        pytest.skip(f"work-group of {tx * ty} exceeds {xgpu_device.id}'s maximum")
    # pixels and output channels for one whole tile plus edges; more channels on the fast devices
    k = config.tn + 3
    hw = int(np.ceil(np.sqrt(config.tm + 5)))
    c = 8 if xgpu_device.is_simulator else 24
    case = ("variant", 1, c, hw, hw, k, 3, 3, 1, 1, 1, 1, True)
    run_case(xgpu_device, case, dtype, "NCHW", rng, config=config)


CPU_TRAITS = {"intel-like": ConvTraits(pad_copy=True),
              "pocl-like": ConvTraits(pad_copy=True, pad_row_loop=True, direct_vw=8)}


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("traits", CPU_TRAITS.values(), ids=CPU_TRAITS.keys())
def test_cpu_layout_paths_under_the_memory_checker(checker, traits, layout, monkeypatch, rng):
    # the CPU runtimes' paths (padding copies, unmasked kernels, pixel vectors in the direct kernel),
    # run where every memory access is checked: Oclgrind itself takes the GPUs' masked paths
    monkeypatch.setattr(conv_module, "traits", lambda device: traits)
    copies = []
    pad = conv_module._pad
    monkeypatch.setattr(conv_module, "_pad", lambda *args, **kw: copies.append(args[3]) or pad(*args, **kw))
    for case in CASES:
        if case[0] in ("3x3-pad1", "depthwise", "gray-3x3-direct", "same-even-kernel", "stride3-pad-pair",
                       "depthwise-dilated-asym", "depthwise-c20", "rgb-3x3-s2-k19", "1x1", "groups4-kg5",
                       "few-pixels", "rows-past-a-tile", "1x1-stride2-pad1", "depthwise-s2-odd",
                       "depthwise-s3-dil2", "depthwise-s2-wide"):
            run_case(checker, case, np.float32, layout, rng)
    assert len(copies) >= 3  # the padding was copied in rather than masked (NHWC: for the implicit GEMM only)


def test_plan_is_visible():
    dev = xgpu.get_device()
    assert plan(dev, np.float32, 1, 1).kernel == "direct"  # depthwise 3x3
    assert plan(dev, np.float32, 3, 64, (3, 1)).kernel == "direct"  # 9 products per output
    assert plan(dev, np.float32, 3, 64, (7, 7)).kernel == "implicit-gemm"  # 7x7 first layer
    general = plan(dev, np.float32, 64, 64)
    assert general.kernel == "implicit-gemm" and general.config is not None
    assert general.label.startswith("implicit-gemm ")
    assert plan(dev, np.float32, 40, 17, (1, 1), pointwise=True).kernel == "gemm"
    assert plan(dev, np.float32, 40, 17, (1, 1)).kernel == "implicit-gemm"  # with bias or groups
    assert plan(dev, np.float32, 3, 32, (3, 3)).kernel == "implicit-gemm"  # an RGB stem
    assert plan(dev, np.float32, 3, 32, (3, 3)).config.tn <= max(32, igemm_config(dev, np.float32).tn // 2)
    assert plan(dev, np.float32, 64, 1, (3, 3)).kernel == "direct"  # one output channel per group
    assert plan(dev, np.float32, 1, 4, (3, 3)).kernel == "direct"  # depthwise, channel multiplier 4


@pytest.mark.parametrize("columns", [1, 5, 8, 16, 24, 32, 63, 64, 200])
@pytest.mark.parametrize("base", [GemmConfig(local_tiles=False, tm=64, tn=64, wm=4, wn=4, kc=1),
                                  GemmConfig(local_tiles=False, tm=128, tn=64, wm=8, wn=32, contiguous_cols=True, vw=16),
                                  GemmConfig(local_tiles=False, tm=16, tn=16, wm=2, wn=2)],
                         ids=["strided", "vectors", "small"])
def test_fit_columns_cuts_the_column_tile_to_the_layer(base, columns):
    cfg = fit_columns(base, columns)
    assert cfg.tn >= min(columns, base.tn) and cfg.tn % cfg.wn == 0 and cfg.wn % cfg.vw == 0
    assert cfg.tm // cfg.wm == base.tm // base.wm  # the work-group keeps its rows of work-items
    if columns >= base.tn:
        assert cfg == base
    else:
        assert cfg.tn < 2 * max(columns, cfg.tn // cfg.wn * cfg.vw)  # at most one spare block of columns
        # no more accumulators a work-item than the table's variant
        assert cfg.wm * (cfg.wn // cfg.vw) <= base.wm * (base.wn // base.vw)


def test_empty_batch(xgpu_device):
    x = xgpu.zeros((0, 4, 5, 5), np.float32, xgpu_device)
    w = xgpu.zeros((6, 4, 3, 3), np.float32, xgpu_device)
    assert conv2d(x, w, padding=1).shape == (0, 6, 5, 5)


def test_conv2d_errors(xgpu_device):
    f32 = lambda *s: xgpu.zeros(s, np.float32, xgpu_device)  # noqa: E731
    x, w = f32(1, 4, 5, 5), f32(6, 4, 3, 3)
    with pytest.raises(ShapeError, match="divisible by groups=3"):
        conv2d(x, f32(6, 1, 3, 3), groups=3)
    with pytest.raises(ShapeError, match="expected 2"):
        conv2d(x, f32(6, 4, 3, 3), groups=2)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        conv2d(x, f32(6, 4, 7, 7))
    with pytest.raises(ShapeError, match="4-D"):
        conv2d(f32(4, 5, 5), w)
    with pytest.raises(UnsupportedDtypeError, match="share one dtype"):
        conv2d(x, xgpu.zeros((6, 4, 3, 3), np.float64 if xgpu_device.fp64 else np.float16, xgpu_device))
    with pytest.raises(UnsupportedDtypeError, match="float32, float64, float16 or bfloat16"):
        conv2d(xgpu.zeros((1, 4, 5, 5), np.int32, xgpu_device), xgpu.zeros((6, 4, 3, 3), np.int32, xgpu_device))
    with pytest.raises(InvalidArgumentError, match="padding must be at least 0"):
        conv2d(x, w, padding=-1)
    with pytest.raises(InvalidArgumentError, match="stride must be at least 1"):
        conv2d(x, w, stride=0)
    with pytest.raises(InvalidArgumentError, match="'same' needs stride 1"):
        conv2d(x, w, stride=2, padding="same")
    with pytest.raises(InvalidArgumentError, match="padding must be an int, a pair"):
        conv2d(x, w, padding="full")
    with pytest.raises(InvalidArgumentError, match="layout"):
        conv2d(x, w, layout="NCWH")
    with pytest.raises(ShapeError, match="bias must have shape"):
        conv2d(x, w, f32(5))
    with pytest.raises(InvalidArgumentError, match="not an xgpu array"):
        conv2d(np.zeros((1, 4, 5, 5), np.float32), w)


def test_conv2d_mixed_devices():
    devs = xgpu.devices()
    if len(devs) < 2:
        pytest.skip("one device only")
    with pytest.raises(DeviceMismatchError):
        conv2d(xgpu.zeros((1, 4, 5, 5), np.float32, devs[0]), xgpu.zeros((6, 4, 3, 3), np.float32, devs[1]))


@pytest.mark.parametrize("rows", [False, True], ids=["elements", "rows"])
@pytest.mark.parametrize("in_layout,out_layout", [("NCHW", "NCHW"), ("NCHW", "NHWC"), ("NHWC", "NHWC"),
                                                  ("NHWC", "NCHW")])
@pytest.mark.parametrize("pads,stride", [((1, 1, 1, 1), (1, 1)), ((0, 2, 3, 0), (1, 1)), ((1, 0, 1, 2), (2, 3)),
                                         ((0, 0, 0, 0), (2, 2))])
def test_pad_copy_forms(xgpu_device, rows, in_layout, out_layout, pads, stride, rng, monkeypatch):
    """The padding copy in both forms (a work-item per element; per row or channel plane, as CPU runtimes
    get it), on every device (Oclgrind checks the rows form's accesses too): zeros around the image,
    every stride-th pixel inside, bit for bit, into an output poisoned with NaN."""
    import xgpu.kernels.conv2d as conv_module

    n, c, h, w = 2, 3, 7, 9
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))[:, :, ::stride[0], ::stride[1]]
    xin = x if in_layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    expected = padded if out_layout == "NCHW" else padded.transpose(0, 2, 3, 1)
    monkeypatch.setattr(conv_module, "_rows_form", lambda dev: rows)
    empty = xgpu.empty
    monkeypatch.setattr(xgpu, "empty", lambda *a, **k: empty(*a, **k).set(np.full(a[0], np.nan, np.float32)))
    out = conv_module._pad(xgpu_device, np.dtype(np.float32), xgpu.asarray(xin, xgpu_device), in_layout, pads,
                           out_layout, False, stride=stride)
    assert out.get().tolist() == expected.tolist()


@pytest.mark.parametrize("rows", [False, True], ids=["elements", "rows"])
@pytest.mark.parametrize("phases,stride,pads", [(2, (1, 1), (1, 1, 1, 1)), (2, (1, 2), (0, 1, 2, 1)),
                                                (3, (1, 1), (1, 0, 0, 2))])
def test_pad_copy_phases(xgpu_device, rows, phases, stride, pads, rng, monkeypatch):
    """The padding copy that stores each row as ``phases`` runs of every phases-th column (the direct
    kernel's stride-2 layers), in both forms on every device, bit for bit, past-the-edge columns zero,
    into an output poisoned with NaN."""
    import xgpu.kernels.conv2d as conv_module

    n, c, h, w = 2, 3, 5, 11
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))[:, :, ::stride[0], ::stride[1]]
    wp = padded.shape[3]
    wq = -(-wp // phases)
    widened = np.zeros((n, c, padded.shape[2], wq * phases), np.float32)
    widened[..., :wp] = padded
    expected = np.concatenate([widened[..., f::phases] for f in range(phases)], axis=3)
    monkeypatch.setattr(conv_module, "_rows_form", lambda dev: rows)
    empty = xgpu.empty
    monkeypatch.setattr(xgpu, "empty", lambda *a, **k: empty(*a, **k).set(np.full(a[0], np.nan, np.float32)))
    out = conv_module._pad(xgpu_device, np.dtype(np.float32), xgpu.asarray(x, xgpu_device), "NCHW", pads, "NCHW",
                           False, stride=stride, phases=phases)
    assert out.get().tolist() == expected.tolist()


@pytest.mark.parametrize("n,c,h,w,k,r,stride,pad,dilation", [(2, 17, 7, 7, 6, 3, 1, 1, 1), (1, 18, 9, 8, 5, 3, 2, 1, 1),
                                                             (3, 17, 6, 7, 5, 2, 1, 0, 2), (1, 20, 5, 5, 4, 2, 2, 0, 1)])
def test_im2col_path_on_every_device(xgpu_device, n, c, h, w, k, r, stride, pad, dilation, rng, monkeypatch):
    """Layers with few output pixels run on CPU runtimes as im2col + the GEMM: forced here on every
    device (Oclgrind checks the im2col kernel's accesses), against a float64 reference, strides,
    dilations and padding included."""
    import xgpu.kernels.conv2d as conv_module

    monkeypatch.setattr(conv_module, "_rows_form", lambda dev: True)
    calls = []
    real = conv_module._im2col_gemm
    monkeypatch.setattr(conv_module, "_im2col_gemm", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(np.float32)
    wt = rng.uniform(-1, 1, (k, c, r, r)).astype(np.float32)
    y = conv_module.conv2d(xgpu.asarray(x, xgpu_device), xgpu.asarray(wt, xgpu_device), stride=stride,
                           padding=pad, dilation=dilation)
    assert calls, "the layer did not take the im2col path"
    expected = conv2d_reference(x, wt, stride=(stride, stride), pads=(pad,) * 4, dilation=(dilation, dilation))
    assert_close(y.get(), expected, dtype=np.float32, terms=c * r * r)


# (N, C, H, W, channel multiplier, R, S, stride, padding, dilation, bias): rows shorter and longer than a
# vector, strides 2 and 3, dilation, padding wider than the window, "same" with an even kernel, 1x1 images,
# tall narrow images
DEPTHWISE_CASES = [
    (2, 5, 7, 7, 1, 3, 3, 1, 1, 1, True),
    (1, 3, 9, 8, 1, 3, 3, 1, 1, 1, False),
    (3, 20, 5, 5, 1, 3, 3, 1, 1, 1, True),
    (1, 4, 13, 17, 2, 3, 3, 2, 1, 1, False),
    (1, 3, 11, 23, 1, 3, 3, (1, 3), 2, (2, 1), True),
    (1, 2, 12, 19, 1, 5, 5, 2, 0, 1, True),
    (1, 3, 8, 11, 1, 4, 2, 1, "same", 1, False),
    (2, 3, 1, 1, 1, 3, 3, 1, 1, 1, True),
    (1, 2, 6, 5, 3, 3, 3, 2, 3, 1, True),
    (1, 1, 40, 37, 1, 3, 3, 1, 1, 2, False),
    # rows of 2 and 5 pixels in several row blocks: a vector's lanes past a row spill into the block's next
    # rows (written after), never past its last row
    (1, 1, 64, 4, 1, 3, 3, 1, 0, 1, True),
    (1, 2, 40, 5, 2, 3, 3, 1, 1, 1, False),
]


def _depthwise_case(device, case, dtype, rng, monkeypatch):
    """Run a DEPTHWISE_CASES layer with conv2d_dw.mako forced on ``device`` (a buffer small enough that large
    images take several row blocks, outputs poisoned with NaN) and check it against a float64 reference."""
    need(device, dtype)
    n, c, h, w, mult, r, s, stride, padding, dilation, has_bias = case
    monkeypatch.setattr(conv_module, "_rows_form", lambda dev: True)
    monkeypatch.setattr(conv_module, "DEPTHWISE_BUFFER_BYTES", 2048)
    calls = []
    real = conv_module._depthwise_launch
    monkeypatch.setattr(conv_module, "_depthwise_launch", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    empty = xgpu.empty
    monkeypatch.setattr(xgpu, "empty", lambda shape, dt=np.float32, device=None: empty(shape, dt, device).fill(
        poison(dt)))
    k = c * mult
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(dtype)
    wt = rng.uniform(-1, 1, (k, 1, r, s)).astype(dtype)
    b = rng.uniform(-1, 1, k).astype(dtype) if has_bias else None
    y = conv2d(xgpu.asarray(x, device), xgpu.asarray(wt, device),
               xgpu.asarray(b, device) if has_bias else None, stride=stride, padding=padding,
               dilation=dilation, groups=c)
    assert calls, "the layer did not take the depthwise kernel"
    ref = conv2d_reference(x, wt, b, pair(stride), pads_of(padding, r, s, pair(dilation)), pair(dilation), c)
    assert_close(y.get(), ref, dtype=dtype, terms=r * s, what=f"depthwise {case}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[f"dw{i}" for i in range(len(DEPTHWISE_CASES))])
def test_depthwise_kernel_on_every_device(xgpu_device, case, dtype, rng, monkeypatch):
    """Depthwise layers run on CPU runtimes through conv2d_dw.mako: forced here on every device (Oclgrind
    checks its buffer's bounds), with a buffer small enough that large images take several row blocks,
    into outputs poisoned with NaN, against a float64 reference."""
    _depthwise_case(xgpu_device, case, dtype, rng, monkeypatch)


@pytest.mark.parametrize("dtype", [d for d in DTYPES if np.dtype(d).itemsize == 2])
@pytest.mark.parametrize("case", [c for c in DEPTHWISE_CASES if c[7] != 1],
                         ids=[f"dw{i}" for i, c in enumerate(DEPTHWISE_CASES) if c[7] != 1])
def test_depthwise_staged_half_rows_on_every_device(xgpu_device, case, dtype, rng, monkeypatch):
    """float16/bfloat16 depthwise layers with a column stride, their input rows converted in a staging row
    first (narrow rows, and on Intel's runtime any row of a stride above 2: _half_staged), forced on every
    device (Oclgrind checks the staging row's bounds), as above."""
    monkeypatch.setattr(conv_module, "_half_staged", lambda *args: True)
    compiled = []
    real_compile = xgpu.compile
    monkeypatch.setattr(xgpu, "compile", lambda t, d, defines=None, **kw: (
        compiled.append(dict(defines or {})), real_compile(t, d, defines=defines, **kw))[1])
    _depthwise_case(xgpu_device, case, dtype, rng, monkeypatch)
    assert any(d.get("stage") for d in compiled), "the layer did not take the staged depthwise kernel"


# (N, C, H, W, K, groups, R, S, stride, padding, dilation, bias): RGB stems (3x3 stride 2, 7x7 stride 2),
# output channels not a multiple of the block (K = 6, 10), two groups of 2-4 input channels, a row
# shorter than a vector, dilation, a 1x1 layer of 2 channels, two groups of 16 channels (blocks of 6)
FEW_CHANNEL_CASES = [
    (1, 3, 19, 23, 16, 1, 3, 3, 2, 1, 1, True),
    (2, 3, 17, 13, 8, 1, 7, 7, 2, 3, 1, False),
    (1, 3, 9, 10, 6, 1, 3, 3, 1, 1, 1, True),
    (1, 4, 11, 9, 10, 2, 3, 3, 1, 1, 2, False),
    (2, 8, 6, 5, 12, 2, 3, 3, (2, 1), 2, 1, True),
    (1, 2, 7, 30, 5, 1, 1, 1, 1, 0, 1, False),
    (1, 32, 9, 11, 24, 2, 3, 3, 1, 1, 1, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FEW_CHANNEL_CASES, ids=[f"few{i}" for i in range(len(FEW_CHANNEL_CASES))])
def test_few_channel_kernel_on_every_device(xgpu_device, case, dtype, rng, monkeypatch):
    """Layers with a few input channels per group (RGB stems) run conv2d_dw.mako on CPU runtimes, several
    output channels a work-item: forced here on every device (Oclgrind checks the buffer's bounds), with a
    small buffer (several row blocks), into outputs poisoned with NaN, against a float64 reference."""
    need(xgpu_device, dtype)
    n, c, h, w, k, groups, r, s, stride, padding, dilation, has_bias = case
    monkeypatch.setattr(conv_module, "_rows_form", lambda dev: True)
    monkeypatch.setattr(conv_module, "DEPTHWISE_BUFFER_BYTES", 4096)
    calls = []
    real = conv_module._depthwise_launch
    monkeypatch.setattr(conv_module, "_depthwise_launch", lambda *a, **kw: calls.append(a[-1]) or real(*a, **kw))
    empty = xgpu.empty
    monkeypatch.setattr(xgpu, "empty", lambda shape, dt=np.float32, device=None: empty(shape, dt, device).fill(
        poison(dt)))
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(dtype)
    wt = rng.uniform(-1, 1, (k, c // groups, r, s)).astype(dtype)
    b = rng.uniform(-1, 1, k).astype(dtype) if has_bias else None
    y = conv2d(xgpu.asarray(x, xgpu_device), xgpu.asarray(wt, xgpu_device),
               xgpu.asarray(b, xgpu_device) if has_bias else None, stride=stride, padding=padding,
               dilation=dilation, groups=groups)
    assert calls == [c // groups], "the layer did not take the few-channel kernel"
    ref = conv2d_reference(x, wt, b, pair(stride), pads_of(padding, r, s, pair(dilation)), pair(dilation), groups)
    assert_close(y.get(), ref, dtype=dtype, terms=c // groups * r * s, what=f"few channels {case}")


def test_few_channel_kernel_leaves_large_blocks_of_taps(xgpu_device, rng, monkeypatch):
    """A block of filter taps beyond FEW_CHANNELS_TAPS (a 5x5 window over 16 channels, 8 output channels a
    block) is left to the implicit GEMM, with the same result."""
    monkeypatch.setattr(conv_module, "_rows_form", lambda dev: True)
    results = []
    real = conv_module._depthwise_launch
    monkeypatch.setattr(conv_module, "_depthwise_launch", lambda *a, **kw: results.append(real(*a, **kw)) or results[-1])
    x = rng.uniform(-1, 1, (1, 16, 9, 10)).astype(np.float32)
    wt = rng.uniform(-1, 1, (8, 16, 5, 5)).astype(np.float32)
    y = conv2d(xgpu.asarray(x, xgpu_device), xgpu.asarray(wt, xgpu_device), padding=2)
    assert len(results) == 1 and results[0] is None
    ref = conv2d_reference(x, wt, None, (1, 1), (2, 2, 2, 2), (1, 1), 1)
    assert_close(y.get(), ref, dtype=np.float32, terms=16 * 25)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_a_layer_like_an_earlier_one_is_still_checked(xgpu_device, layout, rng):
    """conv2d remembers what a call's checks worked out, by devices, dtypes, shapes and parameters: a
    pointwise, a depthwise and a general layer stay right on the remembered path, with and without a bias;
    a view, True or a numpy integer as a stride, and a bias of the wrong shape, dtype or kind after good
    calls are still checked."""
    nhwc = layout == "NHWC"
    for c, k, r, groups, stride, padding in [(8, 12, 1, 1, 1, 0), (8, 8, 3, 8, 1, 1), (8, 12, 3, 1, 2, 1)]:
        x0 = rng.uniform(-1, 1, (2, c, 9, 7)).astype(np.float32)
        w0 = rng.uniform(-1, 1, (k, c // groups, r, r)).astype(np.float32)
        b0 = rng.uniform(-1, 1, k).astype(np.float32)
        x = xgpu.asarray(x0.transpose(0, 2, 3, 1).copy() if nhwc else x0, xgpu_device)
        w = xgpu.asarray(w0.transpose(2, 3, 1, 0).copy() if nhwc else w0, xgpu_device)
        b = xgpu.asarray(b0, xgpu_device)
        for bias in (None, b0, None):
            ref = conv2d_reference(x0, w0, bias, (stride, stride), (padding,) * 4, (1, 1), groups)
            ref = ref.transpose(0, 2, 3, 1) if nhwc else ref
            for _ in range(2):  # the second call takes the remembered path
                y = xgpu.conv2d(x, w, None if bias is None else b, stride=stride, padding=padding, groups=groups,
                                layout=layout)
                assert_close(y.get(), ref, dtype=np.float32, terms=c // groups * r * r, what=f"{layout} {c}->{k} {r}x{r}")
        again = xgpu.conv2d(x, w, stride=np.int64(stride), padding=padding, groups=groups, layout=layout)
        assert_close(again.get(), ref, dtype=np.float32, terms=c // groups * r * r)
        with pytest.raises(InvalidArgumentError, match="stride"):
            xgpu.conv2d(x, w, stride=True if stride == 2 else (1, True), padding=padding, groups=groups, layout=layout)
        with pytest.raises(ShapeError, match="bias"):
            xgpu.conv2d(x, w, xgpu.asarray(np.ones(k + 1, np.float32), xgpu_device), stride=stride, padding=padding,
                        groups=groups, layout=layout)
        with pytest.raises(UnsupportedDtypeError):
            xgpu.conv2d(x, w, xgpu.asarray(b0.astype(np.float64), xgpu_device), stride=stride, padding=padding,
                        groups=groups, layout=layout)
        with pytest.raises(InvalidArgumentError, match="bias"):
            xgpu.conv2d(x, w, b0, stride=stride, padding=padding, groups=groups, layout=layout)
        # the same shape as a view of a larger image: read through its strides
        big = np.concatenate([x0, x0], axis=3)
        view = xgpu.asarray(big.transpose(0, 2, 3, 1).copy() if nhwc else big, xgpu_device)
        view = view[:, :, 7:, :] if nhwc else view[:, :, :, 7:]
        y = xgpu.conv2d(view, w, stride=stride, padding=padding, groups=groups, layout=layout)
        assert_close(y.get(), ref, dtype=np.float32, terms=c // groups * r * r, what="a view")


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("widen", [True, False], ids=["widened", "half-kernel"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_half_implicit_gemm_layers_widened_or_not(xgpu_device, half, widen, layout, monkeypatch, rng):
    """float16/bfloat16 implicit-GEMM layers: on float32 copies where ConvTraits.widen_half says so (the CPU
    runtimes), the result rounded once; else the half kernel. Both against a float64 reference, with a bias
    and odd sizes, called twice (the second call takes the remembered path)."""
    real = conv_module.traits
    monkeypatch.setattr(conv_module, "traits", lambda device: replace(real(device), widen_half=widen))
    conv_module._seen_calls.clear()
    widened = []
    wrap = conv_module._widened
    monkeypatch.setattr(conv_module, "_widened", lambda layer: widened.append(layer) or wrap(layer))
    dtype = np.dtype(xgpu.bfloat16) if half == "bfloat16" else np.dtype(np.float16)
    need(xgpu_device, dtype)
    x = rng.uniform(-1, 1, (2, 20, 7, 11)).astype(dtype)  # 20 input channels: past the few-channel kernel
    w = rng.uniform(-1, 1, (13, 20, 3, 3)).astype(dtype)
    b = rng.uniform(-1, 1, 13).astype(dtype)
    ref = conv2d_reference(x, w, b, (2, 1), (1, 1, 0, 0), (1, 1), 1)
    xs, ws = (x, w) if layout == "NCHW" else (x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0))
    args = [xgpu.asarray(np.ascontiguousarray(a), xgpu_device) for a in (xs, ws, b)]
    for _ in range(2):
        y = conv2d(*args, stride=(2, 1), padding=(1, 0), layout=layout).get()
        assert y.dtype == dtype
        got = y if layout == "NCHW" else y.transpose(0, 3, 1, 2)
        assert_close(got, ref, dtype=dtype, terms=180, what=f"{layout} {dtype} widened={widen}")
    assert bool(widened) == widen
    conv_module._seen_calls.clear()
