"""The layer test: import arrows in ``lamostdb`` point down, and there are no import cycles.

Every ``import`` and ``from ... import`` of the package counts, wherever it stands: at the
top of a module, inside a function (a lazy import), or under ``if TYPE_CHECKING:``. The
modules are read with :mod:`ast`, never imported.

Layers, bottom to top (a module may import its own layer and the layers below):

0. ``version``, ``resources``, ``lazy``, ``healpix``: constants, lazy package attributes and pure
   pixel kernels
1. ``io``: the only readers and writers of spectrum files
2. ``templates``: template sets, the working grid and flux-conserving rebinning
3. ``match``: the numeric engine
4. ``catalog``: the store only (layout, ledger, commits, snapshots, worker safety)
5. ``execute``: where partition functions run (local pool, Dask cluster)
6. ``ingest``, ``classify``, ``xmatch``, ``ids``, ``refcat``, ``export``: the stages
7. ``validate``, ``plot``: truth joins, calibration, figures
8. ``pipeline``: multi-stage operations
9. ``sim``: the simulator; only the CLI (and tests and benchmarks) may use it
10. ``cli`` and the package's top (``lamostdb/__init__.py``, the :func:`lamostdb.open` facade)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import lamostdb

PACKAGE = "lamostdb"
TOP = "<top>"  # the unit of lamostdb/__init__.py itself
LAYERS: tuple[tuple[str, ...], ...] = (
    ("version", "constants", "resources", "lazy", "healpix"),
    ("io",),
    ("templates",),
    ("match",),
    ("catalog",),
    ("execute",),
    ("ingest", "classify", "xmatch", "ids", "refcat", "export"),
    ("validate", "plot"),
    ("pipeline",),
    ("sim",),
    ("cli", TOP),
)
#: Units (besides tests and benchmarks, which are not in the package) that may import ``sim``.
SIM_USERS = ("cli",)


@dataclass(frozen=True)
class Arrow:
    """One import of a package module by another: ``source`` imports ``target`` at ``where``."""

    source: str
    target: str
    where: str  # "lamostdb/catalog/store.py:115"


def package_modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package under ``root``."""
    mods: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The package module an imported dotted name lives in (its longest known prefix)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_arrows(root: Path, package: str = PACKAGE) -> list[Arrow]:
    """Every import between modules of the package, at any depth of each module's syntax tree.

    ``from a.b import c`` points at module ``a.b.c`` when that is a module, else at ``a.b``.
    Relative imports are resolved against the importing module.
    """
    mods = package_modules(root, package)
    arrows: list[Arrow] = []
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".")[
                        : len(mod.split(".")) - node.level + (1 if is_pkg else 0)
                    ]
                    base = ".".join(anchor + ([base] if base else []))
                names = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
                ]
            for name in names:
                if name.split(".")[0] != package:
                    continue
                target = _resolve(name, mods)
                if target is not None and target != mod:
                    where = f"{path.relative_to(root).as_posix()}:{node.lineno}"
                    arrows.append(Arrow(mod, target, where))
    return arrows


def unit(module: str) -> str:
    """The layer unit of a module: its first sub-package or module under the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def layer_of(name: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int | None:
    """Index of the layer that holds unit ``name`` (None: the unit is in no layer)."""
    for i, units in enumerate(layers):
        if name in units:
            return i
    return None


def back_arrows(arrows: list[Arrow], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """A line per import of a higher layer's module, and per module of a unit in no layer."""
    problems = []
    for a in arrows:
        src, dst = layer_of(unit(a.source), layers), layer_of(unit(a.target), layers)
        for mod, lay in ((a.source, src), (a.target, dst)):
            if lay is None:
                problems.append(
                    f"{a.where}: {mod} is in no layer; add its unit "
                    f"{unit(mod)!r} to LAYERS in tests/test_layers.py"
                )
        if src is not None and dst is not None and dst > src:
            problems.append(
                f"{a.where}: {a.source} (layer {src}, {unit(a.source)}) imports "
                f"{a.target} (layer {dst}, {unit(a.target)}), a layer above it; "
                "move the shared code down or the importer up"
            )
    return sorted(set(problems))


def cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~150)
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(found)


def cycle_report(arrows: list[Arrow], key=lambda m: m) -> list[str]:
    """A line per import cycle (between modules, or between units with ``key=unit``),
    naming every import that ties it (file:line)."""
    edges: dict[str, dict[str, str]] = {}
    for a in arrows:
        s, t = key(a.source), key(a.target)
        if s != t:
            edges.setdefault(s, {}).setdefault(t, a.where)
    lines = []
    for comp in cycles(edges):
        ties = [
            f"{s} -> {t} ({w})"
            for s in comp
            for t, w in sorted(edges.get(s, {}).items())
            if t in comp
        ]
        lines.append(f"import cycle {' <-> '.join(comp)}: " + "; ".join(ties))
    return lines


REPO = Path(lamostdb.__file__).resolve().parents[1]


def test_arrows_are_read_at_every_depth() -> None:
    """The reader sees lazy imports and TYPE_CHECKING imports (or the other tests prove nothing)."""
    arrows = import_arrows(REPO)
    found = {(a.source, a.target) for a in arrows}
    # a top-level, a lazy (inside a method) and a TYPE_CHECKING import of today's code
    assert ("lamostdb.catalog.store", "lamostdb.catalog.recovery") in found
    assert ("lamostdb.templates.library", "lamostdb.templates.kesseli") in found
    assert ("lamostdb.catalog.commit", "lamostdb.catalog.store") in found
    assert ("lamostdb", "lamostdb.catalog.store") in found
    assert len(package_modules(REPO)) > 100 and len(arrows) > 300


def test_no_module_imports_a_higher_layer() -> None:
    problems = back_arrows(import_arrows(REPO))
    assert not problems, "imports that run back up:\n" + "\n".join(problems)


def test_no_import_cycles_between_modules() -> None:
    problems = cycle_report(import_arrows(REPO))
    assert not problems, "\n".join(problems)


def test_no_import_cycles_between_units() -> None:
    """Units of one layer (xmatch, ids, refcat, export) may import each other, but one way."""
    problems = cycle_report(import_arrows(REPO), key=unit)
    assert not problems, "\n".join(problems)


def test_only_the_cli_imports_sim() -> None:
    bad = [
        f"{a.where}: {a.source} imports {a.target}; the simulator is for the CLI, tests "
        "and benchmarks (move a mock into lamostdb/sim/)"
        for a in import_arrows(REPO)
        if unit(a.target) == "sim" and unit(a.source) not in ("sim", *SIM_USERS)
    ]
    assert not bad, "\n".join(bad)


#: Stage rooms: each has a pure partition module and a driver module.
STAGE_ROOMS = ("ingest", "classify", "xmatch", "ids", "refcat", "export")
#: What kernels (the engine, pixel arithmetic, partition functions) must not import: readers
#: and writers of files, the store (its schema contracts aside), executors and the CLI.
#: In-memory engines are fine: DuckDB joins Arrow tables (the pixel join), and the FITS
#: encoders of ``io`` make bytes (a driver writes them).
KERNEL_FORBIDDEN = (
    "lamostdb.io",
    "lamostdb.catalog",
    "lamostdb.execute",
    "lamostdb.cli",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "astropy.io",
)
KERNEL_ALLOWED = (
    "lamostdb.catalog.schema",  # the tables' contracts (packaged JSON)
    "lamostdb.io.record",  # the parsed-spectrum data class
    "lamostdb.io.sqlfiles",  # named SQL statements (packaged text)
    "lamostdb.io.fits_bintable",
    "lamostdb.io.fits_cards",  # bytes encoders
    "lamostdb.io.fits_checksum",
)
#: Calls that touch files, refused in partition functions and pixel kernels (the ast check
#: reads every call; ``open`` and the pathlib/pyarrow/duckdb readers and writers).
FILE_CALLS = frozenset(
    {
        "open",
        "read_text",
        "read_bytes",
        "write_text",
        "write_bytes",
        "mkdir",
        "unlink",
        "rmdir",
        "read_table",
        "write_table",
        "read_parquet",
        "write_parquet",
        "ParquetFile",
        "iterdir",
        "glob",
    }
)


def is_kernel(module: str) -> bool:
    """The engine (``match``), pixel arithmetic (``healpix``) and the stages' partition
    functions (``<stage>.partition``) are kernels: arrays and Arrow tables in and out."""
    parts = module.split(".")
    return (len(parts) > 1 and parts[1] in ("match", "healpix")) or (
        len(parts) > 2 and parts[1] in STAGE_ROOMS and parts[2] == "partition"
    )


def kernel_imports(root: Path, package: str = PACKAGE) -> list[str]:
    """``file:line: module imports name`` for every forbidden import of a kernel."""
    bad = []
    for mod, path in package_modules(root, package).items():
        if not is_kernel(mod):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in KERNEL_FORBIDDEN) and not any(
                    name == a or name.startswith(a + ".") for a in KERNEL_ALLOWED
                ):
                    bad.append(
                        f"{path.relative_to(root).as_posix()}:{node.lineno}: {mod} imports {name}"
                    )
    return bad


def file_calls(root: Path, package: str = PACKAGE) -> list[str]:
    """``file:line: module calls name`` for calls in :data:`FILE_CALLS` made by a partition
    function module or a pixel kernel (``healpix``)."""
    bad = []
    for mod, path in package_modules(root, package).items():
        parts = mod.split(".")
        if not (is_kernel(mod) and (parts[1] == "healpix" or parts[-1] == "partition")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = (
                    f.id
                    if isinstance(f, ast.Name)
                    else f.attr
                    if isinstance(f, ast.Attribute)
                    else None
                )
                if name in FILE_CALLS:
                    bad.append(
                        f"{path.relative_to(root).as_posix()}:{node.lineno}: {mod} calls {name}"
                    )
    return bad


def test_partition_functions_and_pixel_kernels_call_no_file_function() -> None:
    bad = file_calls(REPO)
    assert not bad, (
        "partition functions get tables and return tables; the driver's task "
        "function reads and writes:\n" + "\n".join(bad)
    )


def test_kernels_touch_no_files_store_or_cli() -> None:
    bad = kernel_imports(REPO)
    assert not bad, (
        "kernels are arrays in, arrays out; move the I/O to the stage driver:\n" + "\n".join(bad)
    )


def test_every_stage_room_has_a_partition_function_and_a_driver() -> None:
    mods = package_modules(REPO)
    missing = [
        f"lamostdb.{room}.{part}"
        for room in STAGE_ROOMS
        for part in ("partition", "stage")
        if f"lamostdb.{room}.{part}" not in mods
    ]
    assert not missing, f"stage rooms lack {missing}"


def test_kernel_check_fails_on_a_kernel_that_reads_parquet(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", "")
    _write(tmp_path, "pkg/match/__init__.py", "")
    _write(tmp_path, "pkg/match/k.py", "import pyarrow.parquet as pq\n")
    _write(tmp_path, "pkg/ids/__init__.py", "")
    _write(
        tmp_path,
        "pkg/ids/partition.py",
        "from pyarrow.dataset import dataset\ndef f(p):\n    return open(p).read()\n",
    )
    _write(tmp_path, "pkg/ids/stage.py", "import pyarrow.parquet\nopen('x')\n")  # a driver may
    bad = kernel_imports(tmp_path, "pkg")
    assert [b.split(":")[0] for b in bad] == ["pkg/ids/partition.py", "pkg/match/k.py"]
    assert [b.split(":")[0] for b in file_calls(tmp_path, "pkg")] == ["pkg/ids/partition.py"]


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_checks_fail_on_a_back_arrow_and_a_cycle(tmp_path: Path) -> None:
    """A planted lazy back-arrow, TYPE_CHECKING cycle and relative-import cycle are all named."""
    _write(tmp_path, "lamostdb/__init__.py", "")
    _write(tmp_path, "lamostdb/io/__init__.py", "")
    _write(
        tmp_path,
        "lamostdb/io/a.py",
        "import os\n\n\ndef f():\n    from lamostdb.catalog.store import g\n    return g\n",
    )
    _write(tmp_path, "lamostdb/catalog/__init__.py", "")
    _write(
        tmp_path,
        "lamostdb/catalog/store.py",
        "from typing import TYPE_CHECKING\nfrom lamostdb.io import a\n"
        "if TYPE_CHECKING:\n    from lamostdb.catalog.commit import h\n",
    )
    _write(tmp_path, "lamostdb/catalog/commit.py", "from . import store\nfrom .store import x\n")
    arrows = import_arrows(tmp_path)
    assert back_arrows(arrows) == [
        "lamostdb/io/a.py:5: lamostdb.io.a (layer 1, io) imports lamostdb.catalog.store "
        "(layer 4, catalog), a layer above it; move the shared code down or the importer up"
    ]
    # the back-arrow closes a second loop through io.a: one cycle of three modules
    assert cycle_report(arrows) == [
        "import cycle lamostdb.catalog.commit <-> lamostdb.catalog.store <-> lamostdb.io.a: "
        "lamostdb.catalog.commit -> lamostdb.catalog.store (lamostdb/catalog/commit.py:1); "
        "lamostdb.catalog.store -> lamostdb.catalog.commit (lamostdb/catalog/store.py:4); "
        "lamostdb.catalog.store -> lamostdb.io.a (lamostdb/catalog/store.py:2); "
        "lamostdb.io.a -> lamostdb.catalog.store (lamostdb/io/a.py:5)"
    ]
    assert cycle_report(arrows, key=unit) == [
        "import cycle catalog <-> io: catalog -> io (lamostdb/catalog/store.py:2); "
        "io -> catalog (lamostdb/io/a.py:5)"
    ]
    _write(tmp_path, "lamostdb/newroom/__init__.py", "import lamostdb.io.a\n")
    assert any("lamostdb.newroom is in no layer" in p for p in back_arrows(import_arrows(tmp_path)))
