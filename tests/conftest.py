"""Fixtures shared by the cross-package tests (real servers, real agent programs)."""

# Each module here adds its fixtures; keep this list additive.
pytest_plugins = ["real_llama", "gateway_support"]
