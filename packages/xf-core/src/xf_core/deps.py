"""Runtime dependency checks against the version table generated from the members' pyproject files.

``_deps_table.DEPS`` maps each third-party dependency of any xf package to the version range xf declares
for it. It is generated (``uv run xf-repotools deps-table --fix``) and checked in CI, so it never drifts from
the pyproject files.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from xf_core._deps_table import DEPS
from xf_core.errors import MissingDependencyError, XfDependencyVersionError, XfValueError

__all__ = ["DEPS", "check_version", "check_versions", "installed_version"]


def installed_version(package: str) -> str | None:
    """The installed version of distribution ``package``, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_version(package: str, spec: str | None = None, *, purpose: str | None = None) -> str:
    """Check that ``package`` is installed within ``spec`` (default: xf's declared range); return its version.

    Raises :class:`MissingDependencyError` when it is absent and :class:`XfDependencyVersionError` when the
    installed version is outside the range.
    """
    key = package.lower().replace("_", "-")
    if spec is None:
        if key not in DEPS:
            raise XfValueError(
                f"{package} is not a dependency of any xf package (known: {', '.join(sorted(DEPS))}); "
                "pass its version range explicitly."
            )
        spec = DEPS[key]
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier as e:
        raise XfValueError(f"{spec!r} is not a valid version range for {package}.") from e
    version = installed_version(package)
    if version is None:
        raise MissingDependencyError(package, purpose=purpose, install=f"pip install '{package}{spec}'")
    try:
        ok = specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        ok = False
    if not ok:
        raise XfDependencyVersionError(package, version, str(specifier), purpose=purpose)
    return version


def check_versions(packages: Iterable[str] | None = None) -> dict[str, str]:
    """Check several packages (default: every one in the table that is installed); return their versions."""
    names = list(packages) if packages is not None else [p for p in DEPS if installed_version(p) is not None]
    return {name: check_version(name) for name in names}
