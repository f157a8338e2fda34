"""The vendor BLAS for the CPU's vendor MLP path: the OpenBLAS shared library inside the PyPI
wheel `scipy-openblas32` (the build numpy and scipy use), handed to the C++ core, which loads it
with dlopen on first use. macOS uses Accelerate and needs nothing. LONGBOW_BLAS_LIBRARY, when set,
names another CBLAS library and wins."""

from __future__ import annotations

from pathlib import Path


def openblas_library() -> Path | None:
    """Path of scipy-openblas32's shared library, or None when the wheel is not installed."""
    try:
        import scipy_openblas32
    except ImportError:
        return None
    return Path(scipy_openblas32.get_lib_dir()) / scipy_openblas32.get_library(fullname=True)


def configure_blas() -> None:
    """Tells the core where the OpenBLAS library is (when installed); call before creating an
    engine. Loading happens only when the vendor path is measured or asked for."""
    from . import _core

    lib = openblas_library()
    if lib is not None:
        _core.set_blas_library(str(lib))
