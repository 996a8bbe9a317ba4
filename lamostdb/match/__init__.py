"""The numeric engine: spectra on the working grid, templates, chi-square, classification."""
