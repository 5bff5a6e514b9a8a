"""Never lose a user's file: the run manifest, --overwrite, --force-clean, the lock, resume.

Issue 10's data-loss cases, each reproduced as a user would meet it, on a small simulated
archive (32 x 32 px, May-June 2021) with the in-process scheduler. Every refusal must exit 2
with one line naming the files, and leave the folder byte for byte as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import psutil
import pytest
from typer.testing import CliRunner

from soilsuite.cli import app
from soilsuite.errors import OutputExistsError
from soilsuite.io.manifest import LOCK, MANIFEST, OutputFolder
from soilsuite.sources.simulate import simulate

START, END = "2021-05-01", "2021-06-30"


def _snapshot(folder):
    """Every file below ``folder``: relative path -> (size, sha256)."""
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = (os.path.getsize(p), hashlib.sha256(f.read()).hexdigest())
    return out


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("safety") / "archive", size=32, start=dt.date(2021, 5, 1),
                    end=dt.date(2021, 6, 30), seed=5)


def _argv(arch, out, *extra):
    return ["composite", str(arch.catalog_path), "--out", str(out), "--start", START, "--end", END,
            "--scheduler", "sync", "--quiet", "--min-sun-elevation", "0", *extra]


def _invoke(argv):
    r = CliRunner().invoke(app, argv)
    assert "Traceback" not in r.output, r.output
    return r


@pytest.fixture(scope="module")
def finished(arch, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    r = _invoke(_argv(arch, out))
    assert r.exit_code == 0, r.output
    return out


def _copy(src, dst):
    shutil.copytree(src, dst)  # copy2: sizes and mtimes kept, as if soilsuite had written them here
    return dst


def test_manifest_lists_exactly_what_the_run_wrote(finished):
    m = json.loads((finished / MANIFEST).read_text())
    assert m["kind"] == "composite" and m["state"] == "complete"
    on_disk = set(_snapshot(finished)) - {MANIFEST}
    assert set(m["files"]) == on_disk
    assert {"BSF.tif", "MASK.tif", "run.json", "collection.json"} <= on_disk
    assert not (finished / LOCK).exists() and not (finished / ".work").exists()
    for rel, e in m["files"].items():
        assert e["size"] == (finished / rel).stat().st_size
        assert e["sha256"] == hashlib.sha256((finished / rel).read_bytes()).hexdigest()


def test_overwrite_keeps_the_users_files(arch, finished, tmp_path):
    """Case 1: an earlier run's folder in which the user saved a QGIS project and notes."""
    out = _copy(finished, tmp_path / "run")
    (out / "project.qgz").write_bytes(b"PK\x03\x04 qgis project")
    (out / "notes").mkdir()
    (out / "notes" / "field visit.txt").write_text("plot 7 was ploughed in May")
    before = _snapshot(out)
    r = _invoke(_argv(arch, out, "--overwrite", "--threshold", "0.25"))
    assert r.exit_code == 2, r.output
    assert "project.qgz" in r.output and "field visit.txt" in r.output and "--force-clean" in r.output
    assert _snapshot(out) == before

    r = _invoke(_argv(arch, out, "--overwrite", "--force-clean", "--threshold", "0.25"))
    assert r.exit_code == 0, r.output
    after = _snapshot(out)
    assert after["project.qgz"] == before["project.qgz"]
    assert after["notes/field visit.txt"] == before["notes/field visit.txt"]
    assert after["BSF.tif"] != before["BSF.tif"]  # the products were recomputed (other threshold)
    m = json.loads((out / MANIFEST).read_text())
    assert "project.qgz" not in m["files"] and "notes/field visit.txt" not in m["files"]
    assert json.loads((out / "run.json").read_text())["config"]["bare"]["threshold"] == 0.25


def test_changed_product_is_not_replaced_without_force_clean(arch, finished, tmp_path):
    out = _copy(finished, tmp_path / "run")
    with open(out / "BSF.tif", "ab") as f:  # the user edited a product in place
        f.write(b"\0")
    before = _snapshot(out)
    r = _invoke(_argv(arch, out, "--overwrite"))
    assert r.exit_code == 2 and "changed since soilsuite wrote them: BSF.tif" in r.output, r.output
    assert _snapshot(out) == before
    r = _invoke(_argv(arch, out, "--overwrite", "--force-clean"))
    assert r.exit_code == 0, r.output
    assert _snapshot(out)["BSF.tif"] == _snapshot(finished)["BSF.tif"]


def test_a_foreign_run_json_is_not_a_soilsuite_run(arch, tmp_path):
    """Case 2: any folder holding a file named run.json counted as a run and was emptied."""
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"tool": "someone else's", "runs": 3}))
    (out / "results.csv").write_text("a,b\n1,2\n")
    before = _snapshot(out)
    for extra in ([], ["--overwrite"]):
        r = _invoke(_argv(arch, out, *extra))
        assert r.exit_code == 2 and "not a soilsuite output" in r.output, r.output
        assert _snapshot(out) == before
    # --force-clean writes beside them, but never over their run.json
    r = _invoke(_argv(arch, out, "--force-clean"))
    assert r.exit_code == 2 and "run.json" in r.output and "move them away" in r.output, r.output
    assert _snapshot(out) == before


def test_force_clean_writes_beside_unrelated_files(arch, finished, tmp_path):
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "README.txt").write_text("my project folder")
    r = _invoke(_argv(arch, out, "--force-clean"))
    assert r.exit_code == 0, r.output
    assert (out / "README.txt").read_text() == "my project folder"
    assert _snapshot(out)["MASK.tif"] == _snapshot(finished)["MASK.tif"]


def test_finished_run_is_already_complete(arch, finished):
    before = _snapshot(finished)
    r = _invoke(_argv(arch, finished))
    assert r.exit_code == 0 and "already complete" in r.output, r.output
    assert _snapshot(finished) == before


def test_damaged_manifest_refuses(arch, finished, tmp_path):
    out = _copy(finished, tmp_path / "run")
    (out / MANIFEST).write_text("{not json")
    before = _snapshot(out)
    r = _invoke(_argv(arch, out, "--overwrite"))
    assert r.exit_code == 2 and "damaged" in r.output, r.output
    assert _snapshot(out) == before


def test_lock_refuses_a_second_run_and_stale_locks_are_taken_over(arch, finished, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = {"pid": other.pid, "host": socket.gethostname(),
                "process_start": psutil.Process(other.pid).create_time(), "started": "2026-12-01T10:00:00+00:00",
                "command": "soilsuite composite ..."}
        (out / LOCK).write_text(json.dumps(lock))
        r = _invoke(_argv(arch, out))
        assert r.exit_code == 2 and f"pid {other.pid}" in r.output and "another soilsuite run" in r.output, r.output
        assert [p.name for p in out.iterdir()] == [LOCK]
    finally:
        other.kill()
        other.wait()
    # the process is gone: the lock is stale and taken over
    r = _invoke(_argv(arch, out))
    assert r.exit_code == 0, r.output
    assert not (out / LOCK).exists()
    assert _snapshot(out)["MASK.tif"] == _snapshot(finished)["MASK.tif"]


def test_lock_of_another_host_is_never_broken(tmp_path):
    folder = OutputFolder(tmp_path / "o", "composite")
    folder.path.mkdir()
    (folder.path / LOCK).write_text(json.dumps({"pid": 1, "host": "node042", "started": "x"}))
    with pytest.raises(OutputExistsError, match="node042.*remove .*" + re.escape(LOCK)):
        folder.check(overwrite=False)


def test_simulate_overwrite_never_wipes_a_foreign_folder(tmp_path):
    """Case 3: `simulate DIR --overwrite` on a folder that holds no archive wiped it."""
    out = tmp_path / "data"
    out.mkdir()
    (out / "samples.csv").write_text("id,soc\n1,12.5\n")
    before = _snapshot(out)
    r = _invoke(["simulate", str(out), "--size", "16", "--start", "2022-01-01", "--end", "2022-01-10",
                 "--overwrite"])
    assert r.exit_code == 2 and "not a soilsuite output" in r.output, r.output
    assert _snapshot(out) == before


def test_relative_paths_are_recorded_relative_to_the_folder(tmp_path, monkeypatch):
    """A folder given relative to the working directory (as `make demo` does): file-system paths
    and folder-relative names both land as folder-relative entries."""
    monkeypatch.chdir(tmp_path)
    folder = OutputFolder("runs/soil", "dsm")
    folder.path.mkdir(parents=True)
    from pathlib import Path

    (folder.path / "soc_q50.tif").write_bytes(b"map")
    (folder.path / "sub").mkdir()
    (folder.path / "sub" / "x.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="soc_q50.tif .*not written by soilsuite"):
        folder.claim([Path("runs/soil/soc_q50.tif")], overwrite=True)  # not listed yet: foreign
    m = folder.record([Path("runs/soil/soc_q50.tif"), "sub/x.txt"], state="complete")
    assert set(m["files"]) == {"soc_q50.tif", "sub/x.txt"}
    folder.claim([Path("runs/soil/soc_q50.tif"), tmp_path / "runs/soil/soc_q50.tif"], overwrite=True)
    assert folder.survey().owned == ["soc_q50.tif", "sub/x.txt"]
