"""The engine's version, written into every ``results`` row.

Its own module so that the classify driver (which plans which spectra still need a result of
this version) does not import the engine's kernels, scipy and the templates.
"""

ENGINE_VERSION = "0.4.0"  # 0.4: the pruned search by default (SearchConfig; --exhaustive is 0.3's)
# 0.3: LAMOST-scale star library, class decision, full-resolution star
# velocities (rv_kms, rv_err_kms), QSO additive terms redward of Lyman alpha
# 0.2: reordering, confidence, polynomial re-match, ZWARNING
