"""The tools around the library: the ``xgpu`` command, benchmarks, the tuner's search, the parity
runner and its report writers, the demo. ``import xgpu`` imports none of this; nothing in the library
imports it back."""
