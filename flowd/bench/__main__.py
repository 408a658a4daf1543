"""`python -m flowd.bench` is `python -m flowd bench`."""

import sys

from flowd.bench.cli import main

sys.exit(main())
