"""longbow vs llama.cpp (llama-cpp-python) [and transformers] on the same GGUF, in one run.

Thin wrapper: the code lives in longbow.benchmarks.peers (also `longbow bench`); see its docstring.
"""

import sys

from longbow.benchmarks.peers import main

if __name__ == "__main__":
    sys.exit(main())
