"""Simulated LAMOST nights with known truth (``lamostdb simulate``).

:func:`simulate_night` writes one night of FITS spectra with a truth table and
matching mock Gaia / PS1 catalogues; :func:`night_fields` tells which survey
fields a night observes (useful to pick seeds that revisit a field);
:class:`Artefacts` sets the arm-join and red-arm artefacts of a severe night.
"""

from lamostdb.sim.artefacts import Artefacts
from lamostdb.sim.night import night_fields, plan_night, render, simulate_night

__all__ = ["Artefacts", "night_fields", "plan_night", "render", "simulate_night"]
