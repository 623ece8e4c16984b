"""The command line: argument conventions shared by the scripts and the ``metarl`` command."""
