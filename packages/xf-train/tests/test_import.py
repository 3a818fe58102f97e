import xf_train


def test_public_import_has_version():
    assert xf_train.__version__ == "0.3.1"
    assert "__version__" in xf_train.__all__


def test_import_and_training_arguments_do_not_import_torch():
    from xf_core.testing import imported_modules

    modules = imported_modules("import xf_train\nxf_train.TrainingArguments(output_dir='o')")
    assert "xf_train._training_args" in modules
    assert "torch" not in modules  # parsing arguments is cheap; torch loads with the Trainer or a collator


def test_every_public_name_resolves():
    for name in xf_train.__all__:
        assert getattr(xf_train, name) is not None, name
