#!/usr/bin/env bash
# Installs everything xgpu needs on a fresh Debian machine, idempotently:
#   - the OpenCL implementations that run on a CPU (PoCL, Oclgrind, Mesa's rusticl) and clinfo, from Debian;
#   - the GPU compilers that run without a GPU, for `xgpu compile --target` (docs/offline.md): clang-15,
#     lld-15 and rocm-device-libs (AMD), intel-opencl-icd's ocloc (Intel; its GPU runtime lists no
#     platform on a machine without an Intel GPU);
#   - a virtual environment at .venv/ with xgpu (editable), Intel's CPU OpenCL runtime and NVRTC.
# Quick when nothing is missing: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PYTHON=${PYTHON:-python3}
APT_PACKAGES=(pocl-opencl-icd oclgrind clinfo clang-15 lld-15 rocm-device-libs intel-opencl-icd mesa-opencl-icd)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the project's metadata changed since the last successful install.
stamp="$VENV/.xgpu-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
    echo "setup: installing xgpu and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[intel,nvrtc,dev,plot,cluster]'
    touch "$stamp"
fi

# Announce Intel's runtime (installed in the venv, its own ICD file holds a placeholder path) and
# Oclgrind (Debian ships no ICD file) to the system's ICD loader, so that every OpenCL program here
# (clinfo, plain pyopencl, the peers in benchmarks) sees them. xgpu itself finds them either way.
VENDORS=/etc/OpenCL/vendors
if [ -w "$VENDORS" ] || { [ ! -e "$VENDORS" ] && [ "$(id -u)" -eq 0 ]; }; then
    mkdir -p "$VENDORS"
    intel_lib="$(cd "$VENV/lib" && pwd)/libintelocl.so"
    if [ -f "$intel_lib" ] && ! grep -qsx "$intel_lib" "$VENDORS"/*.icd; then
        echo "$intel_lib" > "$VENDORS/intel-cpu-xgpu.icd"
    fi
    oclgrind_lib=/usr/lib/oclgrind/liboclgrind-rt-icd.so
    if [ -f "$oclgrind_lib" ] && ! grep -qs oclgrind "$VENDORS"/*.icd; then
        echo "$oclgrind_lib" > "$VENDORS/oclgrind.icd"
    fi
fi
# mesa-opencl-icd brings rusticl (xgpu enables it with RUSTICL_ENABLE=llvmpipe) and Mesa's older Clover,
# which lists a platform with no devices here: leave Clover out of the ICD folder.
if [ -w "$VENDORS/mesa.icd" ] && grep -qs libMesaOpenCL "$VENDORS/mesa.icd"; then
    rm -f "$VENDORS/mesa.icd"
fi

# Bytecode for the project's own modules, as pip writes it for an ordinary install: an editable install
# leaves it to the first import, and where PYTHONDONTWRITEBYTECODE is set every new process would compile
# xgpu's modules again (about 30 ms of a warm first GEMM call). Up-to-date files are skipped.
"$VENV/bin/python" -m compileall -q -j 0 xgpu backends kernels >/dev/null
