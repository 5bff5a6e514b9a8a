"""What a run shows on the terminal: progress inside a tile, --log-json records, --quiet, --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from soilsuite import progress

SOILSUITE = str(Path(sys.executable).with_name("soilsuite"))


def _records(sim_products: Path) -> list[dict]:
    return [json.loads(line) for line in (sim_products.parent / "composite.log.jsonl").read_text().splitlines()]


def test_log_json_lines_parse_and_end_with_done(sim_products):
    """Every stderr line of `composite --log-json` is a JSON object; the last is `done`."""
    recs = _records(sim_products)
    assert recs[0]["event"] == "start" and recs[0]["command"] == "composite"
    assert recs[-1]["event"] == "done" and recs[-1]["status"] == "ok"
    assert recs[-1]["out"] == str(sim_products) and "BSF" in recs[-1]["products"]
    assert sum(r["event"] == "done" for r in recs) == 1
    assert (sim_products.parent / "composite.stdout").read_text() == ""  # results are the done record
    prog = [r for r in recs if r["event"] == "progress"]
    # progress moves inside the tiles: dates read, stages, and the overall share in fractions of tiles
    tiles = [r for r in prog if r.get("tile")]
    assert any("dates" in r["stage"] for r in tiles)
    assert {r["stage"].split()[0] for r in tiles} >= {"load", "composite", "save"}
    overall = [r["progress"] for r in prog if r["task"] == "tiles"]
    assert overall == sorted(overall) and overall[-1] == 1.0
    assert any(0 < p < 1 and round(p * 4) != p * 4 for p in overall)  # 4 tiles, yet fractions in between
    assert [r for r in prog if r["task"] == "products"][-1]["progress"] == 1.0
    for r in recs:
        assert {"time", "event"} <= set(r)


def test_log_json_error_record(tmp_path):
    res = subprocess.run([SOILSUITE, "composite", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o"),
                          "--start", "2021-01-01", "--end", "2021-12-31", "--log-json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    recs = [json.loads(line) for line in res.stderr.splitlines()]
    assert [r["event"] for r in recs][-2:] == ["error", "done"]
    assert recs[-1]["status"] == "error" and "missing.json" in recs[-2]["message"]


def test_quiet_prints_nothing_on_success(sim_archive, tmp_path):
    """A short window (one summer month): `--quiet` prints nothing on stdout or stderr."""
    res = subprocess.run([SOILSUITE, "composite", str(sim_archive.catalog_path), "--out", str(tmp_path / "q"),
                          "--start", "2021-06-01", "--end", "2021-06-30", "--crs", f"EPSG:{sim_archive.epsg}",
                          "--scheduler", "sync", "--quiet"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (res.stdout, res.stderr) == ("", "")
    assert (tmp_path / "q" / "BSF.tif").is_file()


def test_composite_help_fits_80_columns():
    res = subprocess.run([SOILSUITE, "composite", "--help"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "80", "TERM": "dumb"})
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) <= 80, len(lines)
    assert max(len(line) for line in lines) <= 80
    text = res.stdout
    # panels in order, rarely used options last, --help inside a panel rather than its own
    panels = [p for p in ("Time", "Input and area", "Method", "Output", "Advanced") if f"─ {p} " in text]
    assert panels == ["Time", "Input and area", "Method", "Output", "Advanced"]
    assert text.index("--blue-k-bare") > text.index("─ Advanced ") and "─ Options ─" not in text
    for flag in ("--quiet", "--log-json", "--threshold", "--worldcover"):
        assert flag in text


def test_json_bar_throttles_and_reports(capsys):
    progress.set_output("json")
    try:
        bar = progress.progress_bar(True, stage=True)
        with bar as b:
            t = b.add_task("tiles", total=2, stage="0/2 tiles")
            for _ in range(50):
                b.update(t, advance=0.01, stage="0/2 tiles")  # same stage, quick: throttled
            b.update(t, completed=2, stage="2/2 tiles")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    finally:
        progress.set_output("rich")
    assert 2 <= len(lines) <= 4
    assert lines[-1]["progress"] == 1.0 and lines[-1]["stage"] == "2/2 tiles"
    with pytest.raises(ValueError):
        progress.set_output("loud")
