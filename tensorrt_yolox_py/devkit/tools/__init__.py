"""Console scripts of the development kit: thin command-line adapters over ``devkit``."""
