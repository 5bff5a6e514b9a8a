"""Option groups (``soilsuite.cli_options``): options declared once for several commands reach
typer as if written out (same flags, order, defaults) and the command gets their values parsed."""

from __future__ import annotations

import datetime as dt

import typer
from typer.testing import CliRunner

from soilsuite.cli_common import PanelCommand, friendly
from soilsuite.cli_options import (
    area_options,
    engine_options,
    scene_options,
    time_options,
    with_option_groups,
)
from soilsuite.config import CompositeConfig, EngineOptions, SceneFilter


def _app():
    got: dict = {}
    app = typer.Typer(add_completion=False)

    @app.command(cls=PanelCommand)
    @friendly
    @with_option_groups
    def run(source: str, window: dict = time_options(CompositeConfig), where: dict = area_options(CompositeConfig),
            threshold: float = 0.2, scene: dict = scene_options(), engine: dict = engine_options()):
        got.update(source=source, window=dict(window), where=dict(where), threshold=threshold, scene=dict(scene),
                   engine=dict(engine))

    return app, got


def test_groups_expand_in_place_and_pass_parsed_values():
    app, got = _app()
    cmd = typer.main.get_command(app)
    names = [p.name for p in cmd.params if p.name != "help"]
    assert names == ["source", "start", "end", "collection", "bbox", "area", "mgrs", "crs", "resolution", "threshold",
                     "max_cloud_cover", "min_sun_elevation", "tile_size", "max_memory", "scheduler", "n_workers",
                     "local_engine"]
    workers = next(p for p in cmd.params if p.name == "n_workers")
    assert workers.param_type_name == "option" and workers.opts == ["--workers"]
    r = CliRunner().invoke(app, ["S", "--start", "2021-03-01", "--end", "2021-09-30", "--bbox", "13,52,13.5,52.5",
                                 "--threshold", "0.15", "--max-cloud-cover", "40"])
    assert r.exit_code == 0, r.output
    assert got["window"] == {"start": dt.date(2021, 3, 1), "end": dt.date(2021, 9, 30)}
    assert got["where"]["bbox"] == (13.0, 52.0, 13.5, 52.5) and got["where"]["mgrs"] is None
    assert got["where"]["resolution"] == CompositeConfig.model_fields["resolution"].default
    assert got["scene"] == {"max_cloud_cover": 40.0,
                            "min_sun_elevation": SceneFilter.model_fields["min_sun_elevation"].default}
    assert got["engine"]["tile_size"] == EngineOptions.model_fields["tile_size"].default
    assert (got["source"], got["threshold"]) == ("S", 0.15)


def test_group_values_are_checked_with_one_line():
    app, _ = _app()
    r = CliRunner().invoke(app, ["S", "--start", "2021-13-01", "--end", "2021-09-30"])
    assert r.exit_code == 2 and "--start" in r.output and "2021-13-01" in r.output


def test_grouped_commands_keep_their_options():
    """The commands that share the groups list the same flags as before the groups (in order)."""
    from soilsuite.cli import app

    cmd = typer.main.get_command(app)
    flags = {name: [o for p in c.params if p.param_type_name == "option" for o in p.opts]
             for name, c in cmd.commands.items()}
    area = ["--start", "--end", "--collection", "--bbox", "--area", "--mgrs", "--crs", "--resolution"]
    for name in ("calibrate-threshold", "threshold-sweep", "ingest"):
        f = flags[name]
        assert [x for x in f if x in area] == area, name
    assert flags["composite"][:5] == ["--start", "--end", "--periods", "--period-blue-filter", "--collection"]
    assert flags["export-force"][:6] == ["--start", "--end", "--collection", "--bbox", "--crs", "--resolution"]
    for name in ("composite", "calibrate-threshold", "threshold-sweep"):
        f = flags[name]
        assert f[f.index("--tile-size"):f.index("--tile-size") + 4] == ["--tile-size", "--max-memory", "--scheduler",
                                                                         "--workers"], name
