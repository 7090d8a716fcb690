"""Device rules key on what a device is (its implementation, type and capabilities), not on words of
its vendor's name: recorded devices, transcribed from published clinfo (or deviceQuery) outputs of that
hardware, each get the row of the GEMM's and conv2d's tables that is meant for them.

Each record keeps the fields its source shows; a field the source does not show is 0 (numbers) or ""
(text) rather than a guess. The identity fields (platform, name, vendor, type) are as printed,
trailing spaces included.
"""

from __future__ import annotations

import pytest

import xgpu
from xgpu.errors import InvalidArgumentError
from xgpu.kernels.conv2d import tuning as conv_tuning
from xgpu.kernels.gemm import tuning as gemm_tuning
from xgpu.plugin import DeviceClass, DeviceInfo, device_class, match_rule, rule_for
from xgpu.rules import TAGS, check_rules


def recorded(platform: str, name: str, vendor: str, type: str, driver_version: str = "", *,
             compute_units: int = 0, clock_mhz: int = 0, global_mem_bytes: int = 0, local_mem_bytes: int = 0,
             max_work_group_size: int = 0, **more) -> DeviceInfo:
    # is_simulator as the OpenCL backend sets it: Oclgrind, and Mesa's llvmpipe (a software GPU driver,
    # a few GF/s, sized like a simulator)
    more.setdefault("is_simulator", "oclgrind" in (name + platform).lower() or "llvmpipe" in name.lower())
    return DeviceInfo(local_id="0", name=name, vendor=vendor, platform=platform, type=type,
                      driver_version=driver_version, compute_units=compute_units, clock_mhz=clock_mhz,
                      global_mem_bytes=global_mem_bytes, local_mem_bytes=local_mem_bytes,
                      max_work_group_size=max_work_group_size, **more)


MB = 2**20
POCL = "Portable Computing Language"

# id -> (recorded device, its expected implementation)
DEVICES: dict[str, tuple[DeviceInfo, str]] = {
    # --- PoCL on Intel CPUs: vendor GenuineIntel and "Intel(R)" in the name, the words that caught the
    # old rule for Intel's runtime ("intel" anywhere in platform + name + vendor)
    # https://github.com/hashcat/hashcat/issues/3550 (pocl 1.8)
    "pocl-intel-i7-6700": (recorded(POCL, "pthread-Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz", "GenuineIntel", "cpu"),
                           "pocl"),
    # https://github.com/hashcat/hashcat/issues/2950 (pocl 1.6)
    "pocl-intel-i5-760": (recorded(POCL, "pthread-Intel(R) Core(TM) i5 CPU         760  @ 2.80GHz", "GenuineIntel",
                                   "cpu", "1.6"), "pocl"),
    # https://openbenchmarking.org/system/2501072-NE-GZIPRESUL18/beelink/clinfo (PoCL 6.0, "cpu-" naming;
    # the excerpt ends before "Device Type": HSTR cpu-x86_64-pc-linux-gnu-haswell is PoCL's CPU driver)
    "pocl-intel-n150": (recorded(POCL, "cpu-haswell-Intel(R) N150", "GenuineIntel", "cpu", "6.0+debian"), "pocl"),
    # --- PoCL on AMD CPUs
    # https://github.com/develsoftware/GMinerRelease/issues/50 (pocl 1.3)
    "pocl-amd-phenom": (recorded(POCL, "pthread-AMD Phenom(tm) II X6 1055T Processor", "AuthenticAMD", "cpu", "1.3",
                                 compute_units=6, clock_mhz=2800, max_work_item_sizes=(4096, 4096, 4096)), "pocl"),
    # https://github.com/GPGPUCourse/GPGPUTasks2025/pull/51 (PoCL 6.0; the listing prints no vendor)
    "pocl-amd-ryzen": (recorded(POCL, "cpu-haswell-AMD Ryzen 7 6800H with Radeon Graphics", "", "cpu", "6.0+debian",
                                global_mem_bytes=11615 * MB, local_mem_bytes=512 * 1024, max_work_group_size=4096),
                       "pocl"),
    # --- Intel's CPU runtime on Intel CPUs
    # https://github.com/dthpham/sminterpolate/issues/69 (runtime 1.2.0.475)
    "intel-rt-pentium-j2900": (recorded("Intel(R) OpenCL", "Intel(R) Pentium(R) CPU  J2900  @ 2.41GHz",
                                        "Intel(R) Corporation", "cpu", "1.2.0.475", compute_units=4, clock_mhz=2410,
                                        max_work_group_size=8192, max_work_item_sizes=(8192, 8192, 8192)),
                               "intel-cpu-runtime"),
    # https://github.com/GPGPUCourse/GPGPUTasks2025/pull/10
    "intel-rt-i7-12650h": (recorded("Intel(R) OpenCL", "12th Gen Intel(R) Core(TM) i7-12650H", "Intel(R) Corporation",
                                    "cpu", global_mem_bytes=7752 * MB), "intel-cpu-runtime"),
    # https://github.com/GPGPUCourse/GPGPUTasks2023/pull/3 (the CI runner: the runtime's older platform name)
    "intel-rt-xeon-8272cl": (recorded("Intel(R) CPU Runtime for OpenCL(TM) Applications",
                                      "Intel(R) Xeon(R) Platinum 8272CL CPU @ 2.60GHz", "", "cpu",
                                      global_mem_bytes=6931 * MB), "intel-cpu-runtime"),
    # --- Intel's CPU runtime on AMD CPUs: no "intel" in the name, the vendor is Intel's
    # https://github.com/GPGPUCourse/GPGPUTasks2025/pull/17 (a laptop, and the CI runner)
    "intel-rt-ryzen-4600h": (recorded("Intel(R) OpenCL", "AMD Ryzen 5 4600H with Radeon Graphics",
                                      "Intel(R) Corporation", "cpu", "2025.20.8.0.06_160000",
                                      global_mem_bytes=7623 * MB), "intel-cpu-runtime"),
    "intel-rt-epyc-7763": (recorded("Intel(R) OpenCL", "AMD EPYC 7763 64-Core Processor                ",
                                    "Intel(R) Corporation", "cpu", "2025.20.8.0.06_160000",
                                    global_mem_bytes=15995 * MB), "intel-cpu-runtime"),
    # --- Intel GPUs (NEO)
    # https://github.com/GPGPUCourse/GPGPUTasks2025/pull/42
    "neo-iris-xe": (recorded("Intel(R) OpenCL Graphics", "Intel(R) Iris(R) Xe Graphics", "", "gpu", compute_units=96,
                             clock_mhz=1300, global_mem_bytes=14320 * MB, max_work_group_size=512), "intel-neo"),
    # https://github.com/GPGPUCourse/GPGPUTasks2023/pull/3 (OpenCL 3.0 NEO)
    "neo-uhd-630": (recorded("Intel(R) OpenCL HD Graphics", "Intel(R) UHD Graphics 630", "", "gpu",
                             global_mem_bytes=6478 * MB), "intel-neo"),
    # https://github.com/virus-warnning/pyopencl_samples/blob/master/docs/01_devices.md (Windows: one
    # "Intel(R) OpenCL" platform with the GPU and the CPU)
    "intel-win-hd-620": (recorded("Intel(R) OpenCL", "Intel(R) HD Graphics 620", "", "gpu", compute_units=24,
                                  global_mem_bytes=6512 * MB, local_mem_bytes=64 * 1024), "intel-neo"),
    "intel-win-i5-7200u": (recorded("Intel(R) OpenCL", "Intel(R) Core(TM) i5-7200U CPU @ 2.50GHz", "", "cpu",
                                    compute_units=4, global_mem_bytes=16302 * MB, local_mem_bytes=32 * 1024),
                           "intel-cpu-runtime"),
    # --- AMD GPUs (ROCm, and AMD's Windows driver, same platform name)
    # https://github.com/CNugteren/CLBlast/issues/186 (ROCm 1.6, AMD-APP 2450.0; a Fiji board, "gfx803")
    "rocm-fiji": (recorded("AMD Accelerated Parallel Processing", "gfx803", "", "gpu", compute_units=64,
                           clock_mhz=1000, max_work_group_size=256, max_work_item_sizes=(256, 256, 256)), "amd-rocm"),
    # https://github.com/BVLC/caffe/pull/2195 (AMD-APP 1729.3, a Radeon HD 7500M/7600M)
    "amd-app-hd7600m": (recorded("AMD Accelerated Parallel Processing", "", "", "gpu", compute_units=6,
                                 max_work_group_size=256, max_work_item_sizes=(256, 256, 256)), "amd-rocm"),
    # https://github.com/ROCm/legacy-rocm-build/issues/37 (AMD-APP 1445.5 listing only its CPU device)
    "amd-app-cpu": (recorded("AMD Accelerated Parallel Processing", "", "", "cpu", compute_units=10,
                             max_work_group_size=1024, max_work_item_sizes=(1024, 1024, 1024)), "amd-app-cpu"),
    # --- NVIDIA's OpenCL
    # https://github.com/10gic/vanitygen-plusplus/issues/100
    "nvidia-t4": (recorded("NVIDIA CUDA", "Tesla T4", "NVIDIA Corporation", "gpu", "535.161.08", compute_units=40,
                           clock_mhz=1590, max_work_group_size=1024, max_work_item_sizes=(1024, 1024, 64)),
                  "nvidia-opencl"),
    # https://github.com/CNugteren/CLBlast/issues/521
    "nvidia-1080ti": (recorded("NVIDIA CUDA", "NVIDIA GeForce GTX 1080 Ti", "NVIDIA Corporation", "gpu", "545.23.08"),
                      "nvidia-opencl"),
    # --- the CUDA backend (DeviceInfo as backends/cuda builds it from the driver: platform "CUDA <driver>"),
    # figures from https://chiemon.github.io/2024/12/25/%E6%98%BE%E5%8D%A1%E4%BF%A1%E6%81%AF.html (deviceQuery)
    "cuda-t4": (recorded("CUDA 11.0", "Tesla T4", "NVIDIA", "gpu", "11.0", compute_units=40, clock_mhz=1590,
                         global_mem_bytes=15843721216, local_mem_bytes=49152, max_work_group_size=1024), "cuda"),
    # --- Mesa rusticl
    # https://github.com/GPGPUCourse/GPGPUTasks2025/pull/22 (an Intel GPU through iris)
    "rusticl-iris-xe": (recorded("rusticl", "Mesa Intel(R) Iris(R) Xe Graphics (RPL-P)", "Mesa/X.org", "gpu", "25.1.9",
                                 global_mem_bytes=31822 * MB, local_mem_bytes=64 * 1024), "rusticl"),
    # llvmpipe, from clinfo on this project's development machine (docs: /work/shared/ENVIRONMENT.md)
    "rusticl-llvmpipe": (recorded("rusticl", "llvmpipe (LLVM 15.0.6, 256 bits)", "Mesa/X.org", "cpu", "22.3.6",
                                  compute_units=8, local_mem_bytes=32768, max_work_group_size=1024), "rusticl"),
    # --- Oclgrind
    # https://github.com/clEsperanto/pyclesperanto_prototype/issues/344 (21.10; the excerpt ends before the
    # type, which 21.10 reports as GPU: seen here) and https://github.com/jrprice/Oclgrind/issues/85 (15.5: CPU)
    "oclgrind-21.10": (recorded("Oclgrind", "Oclgrind Simulator", "Oclgrind", "gpu", "Oclgrind 21.10", fp64=True),
                       "oclgrind"),
    "oclgrind-15.5": (recorded("Oclgrind", "", "", "cpu", compute_units=1), "oclgrind"),
}

# The row each kind of device is meant to get, by its key (type, tags): rows may move or change value
# while the keys stay. GEMM and conv2d's implicit GEMM share the keys; conv2d's traits have no GPU row.
SIMULATOR = (None, ("simulator",))
INTEL_RT = ("cpu", ("intel-cpu-runtime",))
OTHER_CPU = ("cpu", ())
GPU = ("gpu", ())
ANY = (None, ())
MEANT = {
    "pocl": OTHER_CPU, "amd-app-cpu": OTHER_CPU, "intel-cpu-runtime": INTEL_RT, "oclgrind": SIMULATOR,
    "intel-neo": GPU, "amd-rocm": GPU, "nvidia-opencl": GPU, "cuda": GPU, "rusticl": None,  # by type, below
}


def meant_key(info: DeviceInfo, implementation: str):
    if info.is_simulator:
        return SIMULATOR
    key = MEANT[implementation]
    if key is None:
        key = GPU if info.type == "gpu" else OTHER_CPU
    return key


def row(rules, key):
    matches = [value for kind, tags, value in rules if (kind, tuple(tags)) == key]
    assert len(matches) == 1, f"the table has no single row keyed {key}"
    return matches[0]


@pytest.mark.parametrize("device_id", DEVICES)
def test_recorded_device_class(device_id):
    info, implementation = DEVICES[device_id]
    cls = device_class(info)
    assert cls.implementation == implementation
    assert cls.type == info.type
    assert cls.simulator == info.is_simulator


@pytest.mark.parametrize("device_id", DEVICES)
def test_recorded_device_gets_its_gemm_row(device_id):
    info, implementation = DEVICES[device_id]
    key = meant_key(info, implementation)
    if key == INTEL_RT:  # the GEMM's panel kernel serves every CPU runtime: no row of Intel's own
        key = OTHER_CPU
    assert rule_for(info, gemm_tuning.RULES) is row(gemm_tuning.RULES, key)
    assert gemm_tuning.rule_for(info, gemm_tuning.RULES) is row(gemm_tuning.RULES, key)
    assert gemm_tuning.default_config(device_class(info)) is row(gemm_tuning.RULES, key)


@pytest.mark.parametrize("device_id", DEVICES)
def test_recorded_device_gets_its_conv2d_rows(device_id):
    info, implementation = DEVICES[device_id]
    key = meant_key(info, implementation)
    assert gemm_tuning.rule_for(info, conv_tuning.RULES) is row(conv_tuning.RULES, key)
    traits_key = ANY if key == GPU else key
    assert gemm_tuning.rule_for(info, conv_tuning.TRAITS) is row(conv_tuning.TRAITS, traits_key)


def test_pocl_on_intel_is_not_given_the_intel_runtime_row():
    """The case that cost PoCL on Intel CPUs 9x: vendor GenuineIntel, "Intel(R)" in the name."""
    intel_rows = [row(conv_tuning.RULES, INTEL_RT), row(conv_tuning.TRAITS, INTEL_RT)]
    for device_id in ("pocl-intel-i7-6700", "pocl-intel-i5-760", "pocl-intel-n150"):
        info = DEVICES[device_id][0]
        assert "intel" in f"{info.platform} {info.name} {info.vendor}".lower()  # what fooled the word match
        for table, intel_row in zip((conv_tuning.RULES, conv_tuning.TRAITS), intel_rows):
            assert rule_for(info, table) is not intel_row


def test_capabilities():
    pocl = device_class(DEVICES["pocl-intel-i7-6700"][0])
    intel = device_class(DEVICES["intel-rt-epyc-7763"][0])
    nvidia = device_class(DEVICES["nvidia-t4"][0])
    oclgrind = device_class(DEVICES["oclgrind-21.10"][0])
    assert (pocl.vectorisation, pocl.local_memory) == ("within-work-item", False)
    assert (intel.vectorisation, intel.local_memory) == ("across-work-items", False)
    assert (nvidia.vectorisation, nvidia.local_memory) == ("across-work-items", True)
    assert (oclgrind.vectorisation, oclgrind.local_memory, oclgrind.simulator) == ("none", False, True)
    assert "vectorises-within-work-item" in pocl.tags and "local-memory" in nvidia.tags


def test_unknown_implementations_fall_back_on_their_type():
    for type_, expected in (("gpu", "gpu"), ("cpu", "cpu"), ("accelerator", "other")):
        cls = device_class(recorded("Some Future Platform", "X", "Y", type_))
        assert cls.implementation == expected
    assert match_rule(device_class(recorded("Some Future Platform", "X", "Y", "gpu")), gemm_tuning.RULES) \
        is row(gemm_tuning.RULES, GPU)


def test_every_table_uses_known_tags_and_ends_with_a_catch_all():
    for table in (gemm_tuning.RULES, conv_tuning.RULES, conv_tuning.TRAITS):
        check_rules(table)
        assert table[-1][:2] == (None, ())
        assert all(set(tags) <= TAGS for _kind, tags, _value in table)


def test_a_misspelt_tag_is_an_error():
    with pytest.raises(InvalidArgumentError, match="'pocll'"):
        rule_for(DEVICES["pocl-amd-phenom"][0], [("cpu", ("pocll",), 1), (None, (), 2)])
    with pytest.raises(InvalidArgumentError, match="no rule fits"):
        rule_for(DEVICES["pocl-amd-phenom"][0], [("gpu", (), 1)])


def test_the_devices_here_are_classed_by_their_platform():
    expected = {"Portable Computing Language": "pocl", "Intel(R) OpenCL": "intel-cpu-runtime",
                "Oclgrind": "oclgrind", "rusticl": "rusticl"}
    for dev in xgpu.devices():
        if dev.platform in expected:
            assert device_class(dev).implementation == expected[dev.platform], dev
        assert isinstance(device_class(dev), DeviceClass)
