"""A run folder and what lives in it: its layout and config, checkpoints, the lock, metrics and logs, W&B."""
