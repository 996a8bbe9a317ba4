"""Simulated LAMOST nights with known truth (``lamostdb simulate``).

>>> from lamostdb.sim import simulate_night  # doctest: +SKIP
>>> simulate_night("night1", n=200, seed=1)["counts"]  # doctest: +SKIP
"""

from lamostdb.sim.night import night_fields, plan_night, render, simulate_night

__all__ = ["night_fields", "plan_night", "render", "simulate_night"]
