"""Regenerate ``star_gaia_ps1.ecsv`` from the PNe-LAMOST ``Star-PS-Gaia.ecsv`` (see PROVENANCE.md).

Run: ``python tests/data/catalogs/make_extract.py /path/to/pne_lamost_gaia_ps1/Star-PS-Gaia.ecsv``
"""

from __future__ import annotations

import sys
from pathlib import Path

from astropy.table import Table

# Gaia DR3 block (VizieR I/355 names) and PS1 DR1 block (VizieR II/349 names); the join in
# the source renamed PS1's RAJ2000/DEJ2000 to RAJ2000_1/DEJ2000_1, restored here.
GAIA = ["Source", "RAdeg", "DEdeg", "pmRA", "pmDE", "Plx", "Gmag", "BPmag", "RPmag"]
PS1 = {
    "objID": "objID",
    "RAJ2000_1": "RAJ2000",
    "DEJ2000_1": "DEJ2000",
    "gmag": "gmag",
    "rmag": "rmag",
    "imag": "imag",
    "zmag": "zmag",
    "ymag": "ymag",
}


def main(src: str) -> None:
    t = Table.read(src)
    out = t[GAIA + list(PS1)]
    for old, new in PS1.items():
        if old != new:
            out.rename_column(old, new)
    out.meta = {"source": "AngelGSoto/PNe-LAMOST Star-PS-Gaia.ecsv, columns subset"}
    out.write(Path(__file__).with_name("star_gaia_ps1.ecsv"), format="ascii.ecsv", overwrite=True)


if __name__ == "__main__":
    main(sys.argv[1])
