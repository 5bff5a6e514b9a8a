"""Numba kernels and their numpy references. Plain arrays in, plain arrays out: no I/O, no xarray, no dask."""
