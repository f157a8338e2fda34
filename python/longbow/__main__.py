"""`python -m longbow` runs the command line."""

import sys

from longbow.cli import main

sys.exit(main())
