"""Writers and readers: COG, STAC output catalog, quicklooks, FORCE export."""
