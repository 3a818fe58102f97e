"""Model families, one file each. Import a family module directly or go through :mod:`xf_load.auto`."""

__all__: list[str] = []
