"""Layer surgery on a small module: swap, quantize tensor by tensor, reload bnb state keys, dequantize."""

import pytest
import torch
from torch import nn

from xf_quant import (
    BitsAndBytesConfig,
    default_skip_modules,
    dequantize_model,
    get_memory_footprint,
    load_prequantized_weight,
    matches_module,
    modules_to_not_convert,
    quantize_weight,
    replace_with_bnb_linear,
)

CONFIGS = {
    "nf4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"),
    "fp4": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4"),
    "nf4-double": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True
    ),
    "int8": BitsAndBytesConfig(load_in_8bit=True),
}
# Relative L2 error of the output against the float module: 4-bit codes hold ~3 significant bits per weight
# (blockwise absmax scaling), int8 ~7; through two layers of random weights that is ~10% and ~1%.
REL_TOL = {"nf4": 0.15, "fp4": 0.2, "nf4-double": 0.15, "int8": 0.03}


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.up_proj = nn.Linear(d, 4 * d)
        self.down_proj = nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        return self.down_proj(torch.relu(self.up_proj(x)))


class Tiny(nn.Module):
    """Dominated by its Linear layers, with an output head like a causal LM's."""

    def __init__(self, d: int = 128, vocab: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([nn.ModuleDict({"mlp": Block(d)}) for _ in range(2)])
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, ids):
        h = self.embed(ids)
        for layer in self.layers:
            h = h + layer["mlp"](h)
        return self.lm_head(h)


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    return Tiny().eval()


def _quantized(float_model, config, **kwargs):
    """A meta copy of ``float_model`` with bnb layers, filled one checkpoint tensor at a time."""
    with torch.device("meta"):
        model = Tiny()
    replaced = replace_with_bnb_linear(model, config, skip_modules=modules_to_not_convert(model), **kwargs)
    for name, tensor in float_model.state_dict().items():
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        if name.rpartition(".")[0] in replaced and attr == "weight":
            quantize_weight(module, tensor)
        else:
            setattr(module, attr, nn.Parameter(tensor.clone(), requires_grad=False))
    return model.eval(), replaced


def test_skip_names_match_whole_path_components():
    assert matches_module("model.layers.0.mlp.down_proj", ["mlp"])
    assert matches_module("model.layers.1.mlp", ["layers.1"])
    assert not matches_module("model.layers.11.mlp", ["layers.1"])
    assert not matches_module("model.layers.0.mlp.gate_proj", ["mlp.gate"])
    assert not matches_module("model.layers.0.mlp.down_proj", ["proj"])
    assert matches_module("model.layers.3.mlp.up_proj", ["layers.*.mlp"])


def test_user_skip_list_is_added_to_the_default_head(float_model):
    assert default_skip_modules(float_model) == ["lm_head"]
    assert modules_to_not_convert(float_model, ["layers.1"]) == ["layers.1", "lm_head"]
    with torch.device("meta"):
        model = Tiny()
    replaced = replace_with_bnb_linear(
        model, CONFIGS["nf4"], skip_modules=modules_to_not_convert(model, ["layers.1"])
    )
    assert replaced == ["layers.0.mlp.up_proj", "layers.0.mlp.down_proj"]
    assert type(model.lm_head) is nn.Linear and type(model.layers[1]["mlp"].up_proj) is nn.Linear


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_quantize_reload_dequantize(float_model, kind):
    config = CONFIGS[kind]
    model, replaced = _quantized(float_model, config)
    ids = torch.arange(16).view(2, 8)
    with torch.no_grad():
        want, got = float_model(ids), model(ids)
    assert ((got - want).norm() / want.norm()).item() < REL_TOL[kind]

    # The bnb state keys round-trip: a fresh meta model loads them directly, with identical outputs.
    state = model.state_dict()
    extra = {"4": "weight.absmax", "8": "SCB"}[str(config.bits)]
    assert f"layers.0.mlp.up_proj.{extra}" in state
    with torch.device("meta"):
        again = Tiny()
    replace_with_bnb_linear(again, config, skip_modules=["lm_head"], pre_quantized=True)
    for name in replaced:
        prefix = name + "."
        tensors = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        load_prequantized_weight(again.get_submodule(name), tensors, prefix=name)
    for name, tensor in state.items():
        owner = next((r for r in replaced if name.startswith(r + ".")), None)
        if owner is None or name == owner + ".bias":
            module_name, _, attr = name.rpartition(".")
            setattr(again.get_submodule(module_name), attr, nn.Parameter(tensor, requires_grad=False))
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(ids), got, rtol=0, atol=1e-6)

    # Back to float: plain nn.Linear layers computing what the quantized layers computed.
    dequantize_model(model)
    assert all(type(model.get_submodule(n)) is nn.Linear for n in replaced)
    assert model.layers[0]["mlp"].up_proj.weight.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(model(ids), got, rtol=0.02, atol=0.02 * got.abs().max().item())


def test_dequantize_without_bnb_layers_is_a_no_op(float_model):
    before = {k: v.clone() for k, v in float_model.state_dict().items()}
    assert dequantize_model(float_model) is float_model
    assert all(torch.equal(before[k], v) for k, v in float_model.state_dict().items())


def test_four_bit_footprint_is_under_a_fifth_of_fp32(float_model):
    model, _ = _quantized(float_model, CONFIGS["nf4-double"])
    ratio = get_memory_footprint(model) / get_memory_footprint(float_model)
    assert ratio <= 0.2, ratio
    model8, _ = _quantized(float_model, CONFIGS["int8"])
    assert get_memory_footprint(model8) / get_memory_footprint(float_model) <= 0.3


def test_prequantized_weight_without_its_state_names_the_key(float_model):
    from xf_quant.errors import PrequantizedWeightsError

    with torch.device("meta"):
        model = Tiny()
    replace_with_bnb_linear(model, CONFIGS["nf4"], skip_modules=["lm_head"], pre_quantized=True)
    with pytest.raises(PrequantizedWeightsError, match=r"layers\.0\.mlp\.up_proj\.weight\.absmax"):
        load_prequantized_weight(
            model.layers[0]["mlp"].up_proj,
            {"weight": torch.zeros(256, 1, dtype=torch.uint8)},
            prefix="layers.0.mlp.up_proj",
        )
