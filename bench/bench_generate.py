"""Prefill and decode tokens/s of longbow on one model (default: SmolLM2-135M Q4_1), JSON lines.

Thin wrapper: the code lives in longbow.benchmarks.generate (also `longbow bench`); see its docstring.
"""

import sys

from longbow.benchmarks.generate import main

if __name__ == "__main__":
    sys.exit(main())
