"""longbow: fast LLM inference for Apple Silicon GPUs, with a portable CPU backend."""

from pkgutil import extend_path

# Developer builds place _core in a separate folder on PYTHONPATH (see README, "Developing").
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"

from .async_engine import AsyncEngine  # noqa: E402
from .llm import LLM  # noqa: E402
from .outputs import CompletionOutput, RequestOutput, StreamDelta  # noqa: E402
from .sampling import SamplingParams  # noqa: E402

__all__ = [
    "AsyncEngine",
    "CompletionOutput",
    "LLM",
    "RequestOutput",
    "SamplingParams",
    "StreamDelta",
    "__version__",
    "cmake_dir",
]


def cmake_dir() -> str:
    """Folder of the installed CMake package (find_package(longbow) -> longbow::core), for
    embedding the C++ core in native apps: cmake -Dlongbow_DIR=$(python -c
    "import longbow; print(longbow.cmake_dir())")."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "lib" / "cmake" / "longbow")
