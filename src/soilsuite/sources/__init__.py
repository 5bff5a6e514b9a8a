"""Where observations come from: STAC catalogs/APIs, SAFE folders, the simulator."""
