"""Reproducing the MAML paper's Figure 5 from the shipped presets.

One job per module: :mod:`~metarl.reproduction.rows` (the paper's rows, their presets and
the evaluation protocol), :mod:`~metarl.reproduction.layout` (where a reproduction's run
folders and results files lie, and which runs count as the shipped preset),
:mod:`~metarl.reproduction.runner` (training and evaluating seeds side by side or on Ray),
:mod:`~metarl.reproduction.summary` (the aggregate over seeds and the paper's checks),
:mod:`~metarl.reproduction.pages` (the results pages' generated tables).
"""

from metarl.reproduction.rows import ROWS, PaperRow, row_named

__all__ = ["ROWS", "PaperRow", "row_named"]
