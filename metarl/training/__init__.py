"""The training loop: a meta-learner's iterations into a run folder, resumable bit for bit.

:mod:`~metarl.training.trainer` (the loop), :mod:`~metarl.training.run_state` (what a run carries
between iterations and sessions, and restoring it).
"""
