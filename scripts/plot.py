"""``metarl plot`` as a script: ``python scripts/plot.py [options]`` (:mod:`metarl.cli.plot`)."""

import sys

from metarl.cli.plot import *  # noqa: F403  (the command's functions, for the tests that call them)
from metarl.cli.plot import main
from metarl.system.memory import restart_with_tuned_malloc

if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/system/memory.py)
    sys.exit(main())
