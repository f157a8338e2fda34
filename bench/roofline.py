"""Decode roofline: machine read bandwidth (a STREAM-like probe) vs weight bytes read per token.

Thin wrapper: the code lives in longbow.benchmarks.roofline (also `longbow bench`); see its docstring.
"""

import sys

from longbow.benchmarks.roofline import main

if __name__ == "__main__":
    sys.exit(main())
