"""Repository consistency checks for the xf workspace, usable as pre-commit hooks.

Each check has a check mode that exits 1 naming file:line and the fixing command, and a ``--fix`` mode.
"""

from importlib import metadata as _metadata

__version__ = _metadata.version("xf-repotools")

__all__ = ["__version__"]
