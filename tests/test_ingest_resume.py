"""``soilsuite ingest`` resumes after a kill (ingest.py, docs/ingest.md "Safety and failures").

An ingest killed with SIGKILL mid-way is run again with the same options: it computes only the
chunks the first run did not store (their files keep their mtime), and the cube is
byte-identical, file for file, to an uninterrupted ingest. Other options on the unfinished (or
finished) cube stop with one line naming each option that differs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from soilsuite import cli
from soilsuite.io.manifest import LOCK, MANIFEST

START, END = "2021-04-01", "2021-05-31"
SOILSUITE = str(Path(sys.executable).parent / "soilsuite")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (MANIFEST, LOCK)}


def _lines(log: Path) -> list[str]:
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    return text.split("\n")[:-1]  # whole lines only


def test_killed_ingest_resumes_byte_identical(sim_archive, tmp_path):
    from soilsuite.ingest import ingest

    out = tmp_path / "cube.zarr"
    w, s, e, n = sim_archive.bbox_lonlat  # the middle of the archive: about 50 x 50 px, 10 days
    bbox = (w + 0.3 * (e - w), s + 0.3 * (n - s), w + 0.7 * (e - w), s + 0.7 * (n - s))
    opts = ["--start", START, "--end", END, "--chunk-px", "64", "--bbox", ",".join(map(repr, bbox))]
    proc = subprocess.Popen([SOILSUITE, "ingest", str(sim_archive.catalog_path), "--out", str(out), *opts,
                             "--workers", "1", "--quiet"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / ".soilsuite-ingest" / "chunks.log"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(_lines(log)) < 21:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = _lines(log)
    chunks = [ln for ln in lines if ln not in ("store", "final")]
    assert lines[0] == "store" and "final" not in lines and len(chunks) >= 20, lines[-3:]
    assert not (out / "zarr.json").exists()  # no cube until it is complete
    store = out / ".soilsuite-ingest" / "store"

    def chunk_file(line: str, root: Path) -> Path:
        name, *idx = line.split()
        return root / name / "c" / Path(*idx)

    stamps = {ln: chunk_file(ln, store).stat().st_mtime_ns for ln in chunks if chunk_file(ln, store).exists()}
    assert len(stamps) >= 5  # (all-nodata chunks are not stored)

    # other options on the unfinished cube: one line naming them, nothing touched
    res = CliRunner().invoke(cli.app, ["ingest", str(sim_archive.catalog_path), "--out", str(out), *opts,
                                       "--end", "2021-06-30", "--max-cloud-cover", "50", "--quiet"])
    assert res.exit_code == 2, res.output
    msg = " ".join(res.output.split())
    assert "unfinished cube of other options" in msg and "--end 2021-06-30 (the cube's: 2021-05-31)" in msg
    assert "--max-cloud-cover 50.0 (the cube's: 80.0)" in msg and "Traceback" not in res.output
    assert {ln: chunk_file(ln, store).stat().st_mtime_ns for ln in stamps} == stamps

    # a chunk cut mid-write leaves zarr's temporary file; plant one so the clean-up is always checked
    planted = store / "B02" / "c" / "9" / "0" / "0.0123abcd.partial"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(b"cut")

    # the same options: resumed, the stored chunks kept (not computed or written again)
    resumed = ingest(sim_archive.catalog_path, out=out, start=START, end=END, chunk_px=64, bbox=bbox, n_workers=2)
    assert resumed.chunks_resumed == len(chunks) and not resumed.already_complete
    assert not (out / ".soilsuite-ingest").exists() and (out / "zarr.json").is_file()
    assert {ln: chunk_file(ln, out).stat().st_mtime_ns for ln in stamps} == stamps

    # byte-identical to an uninterrupted ingest
    ref = ingest(sim_archive.catalog_path, out=tmp_path / "ref.zarr", start=START, end=END, chunk_px=64, bbox=bbox)
    assert ref.chunks_resumed == 0 and ref.dates == resumed.dates
    a, b = _files(out), _files(tmp_path / "ref.zarr")
    assert not [k for k in a if k.endswith(".partial")]  # no temporary file of the killed run left
    assert sorted(a) == sorted(b) and len([k for k in a if "/c/" in k]) > len(stamps)
    assert [k for k in a if a[k] != b[k]] == []

    # finished: the same command does nothing; other options are refused, naming them
    again = ingest(sim_archive.catalog_path, out=out, start=START, end=END, chunk_px=64, bbox=bbox)
    assert again.already_complete and again.dates == ref.dates
    assert {ln: chunk_file(ln, out).stat().st_mtime_ns for ln in stamps} == stamps
    res = CliRunner().invoke(cli.app, ["ingest", str(sim_archive.catalog_path), "--out", str(out), *opts[:-4],
                                       "--bbox", opts[-1], "--quiet"])
    assert res.exit_code == 2 and "finished cube of other options: --chunk-px 512 (the cube's: 64)" in " ".join(
        res.output.split()), res.output
