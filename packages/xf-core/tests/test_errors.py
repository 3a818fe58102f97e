import pytest

from xf_core.errors import (
    MissingDependencyError,
    XfConfigError,
    XfDependencyVersionError,
    XfError,
    XfFileNotFoundError,
)


def test_errors_subclass_the_nearest_builtin():
    assert issubclass(XfFileNotFoundError, FileNotFoundError) and issubclass(XfFileNotFoundError, XfError)
    assert issubclass(XfConfigError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)
    with pytest.raises(ValueError):
        raise XfConfigError("bad", key="hidden_size", file="config.json")


def test_missing_dependency_names_the_install_command():
    err = MissingDependencyError("bitsandbytes", purpose="4-bit quantization")
    assert err.package == "bitsandbytes"
    assert "pip install bitsandbytes" in str(err) and "4-bit quantization" in str(err)


def test_version_error_says_what_to_install():
    err = XfDependencyVersionError("torch", "2.0.0", ">=2.4")
    assert "torch>=2.4" in str(err) and "2.0.0" in str(err)
