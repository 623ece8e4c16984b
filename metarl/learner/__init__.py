"""The learner's building blocks: returns and advantages, the per-task value baseline, TRPO's conjugate gradient
and line search, and the choice of arithmetic (fp32 or bf16) for the reduced-precision parts.
"""
