"""Dask/xarray orchestration: cube -> products per tile, memory budget, progress, resume, cluster."""
