"""A stand-in for pycuda, for tests on machines without an NVIDIA driver (see driver.py)."""

VERSION = (2025, 1, 2)
VERSION_TEXT = "2025.1.2 (xgpu test stand-in)"
