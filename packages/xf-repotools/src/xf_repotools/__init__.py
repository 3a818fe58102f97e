"""Repository consistency checks for the xf workspace, usable as pre-commit hooks.

Each check has a check mode that exits 1 naming file:line and the fixing command, and a ``--fix`` mode.
"""

__version__ = "0.2.0"

__all__ = ["__version__"]
