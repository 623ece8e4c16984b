"""Adaptation curves: the evaluation protocol on held-out tasks, its results files and their statistics.

:mod:`~metarl.evaluation.protocol` (held-out tasks, returns after 0..K inner steps),
:mod:`~metarl.evaluation.results` (``adaptation_<method>.json``), :mod:`~metarl.evaluation.statistics`
(Student-t intervals).
"""
