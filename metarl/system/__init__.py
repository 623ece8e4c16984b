"""The machine metarl runs on: files written atomically, the CPU and package versions, malloc's settings.

Imports nothing else of metarl.
"""
