"""Figures and videos: adaptation and training curves of runs and seeds, a run's own training curve, and videos
of a policy adapting.
"""
