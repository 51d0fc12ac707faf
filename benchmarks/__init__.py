"""Benchmarks: scripts that measure speed, memory and accuracy and write their figures to ``benchmarks/results/``.

Run each from the repository root as a module, e.g. ``python -m benchmarks.speed``.
"""
