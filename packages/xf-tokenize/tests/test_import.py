import xf_tokenize
from xf_core.testing import imported_modules


def test_public_import_has_version():
    assert xf_tokenize.__version__ == "0.3.1"
    assert "__version__" in xf_tokenize.__all__
    for name in xf_tokenize.__all__:
        assert getattr(xf_tokenize, name) is not None


def test_import_and_load_never_import_torch_or_transformers():
    from xf_core.testing import minilm_dir

    path = minilm_dir()
    code = (
        "import xf_tokenize\n"
        "from xf_tokenize import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(path)!r})\n"
        "out = tok(['a b', 'c'], padding=True, return_tensors='np')\n"
        "tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], chat_template='{{ messages[0].content }}')\n"
    )
    modules = imported_modules(code)
    assert "tokenizers" in modules
    assert "torch" not in modules
    assert "transformers" not in modules
    assert "xf_tokenize._tokenizer" not in imported_modules("import xf_tokenize")
