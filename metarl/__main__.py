"""``python -m metarl COMMAND``: the ``metarl`` command (:mod:`metarl.cli.main`)."""

import sys

from metarl.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
