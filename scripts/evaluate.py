"""``metarl evaluate`` as a script: ``python scripts/evaluate.py [options]`` (:mod:`metarl.cli.evaluate`)."""

import sys

from metarl.cli.evaluate import *  # noqa: F403  (the command's functions, for the tests that call them)
from metarl.cli.evaluate import main
from metarl.system.memory import restart_with_tuned_malloc

if __name__ == "__main__":
    restart_with_tuned_malloc()  # large tensors reuse freed memory (metarl/system/memory.py)
    sys.exit(main())
