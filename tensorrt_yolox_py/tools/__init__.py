"""Console scripts: thin command-line adapters over the core."""
