"""Values checked by type and range in the schema (nexus.schema), by full key, before any heavy import."""
import subprocess
import sys
import typing

import pytest
from omegaconf import OmegaConf

from helpers import ROOT
from nexus.errors import UserError
from nexus.schema import Fit, Sample
from nexus.validation import ACCELERATORS, PRECISIONS, check_ranges, validate


def test_lightnings_accepted_values_are_the_schemas():
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT
    from lightning.pytorch.accelerators import AcceleratorRegistry
    lightning = {v for t in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(t)}
    assert set(PRECISIONS) == lightning
    assert set(ACCELERATORS) == set(AcceleratorRegistry.available_accelerators()) | {"auto", "gpu"}


def _fit(*overrides):
    from nexus.cli import load_config
    sys.path.insert(0, str(ROOT / "tools"))
    import fit as fit_tool
    return load_config(fit_tool.TOOL, ["recipe=tiny", *overrides])


def _sample(*overrides):
    from nexus.cli import load_config
    sys.path.insert(0, str(ROOT / "tools"))
    import sample as sample_tool
    return load_config(sample_tool.TOOL, list(overrides))


@pytest.mark.parametrize("override,message", [
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: must be >= 1"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5: must be >= 1 (or -1)"),
    ("model.lr=inf", "model.lr=inf: must be a finite number"),
    ("model.lr=nan", "model.lr=nan: must be a finite number"),
    ("model.lr=0", "model.lr=0.0: must be > 0"),
    ("model.cfg_dropout=1", "model.cfg_dropout=1.0: must be >= 0 and < 1"),
    ("data.batch_size=0", "data.batch_size=0: must be >= 1"),
    ("data.num_workers=-1", "data.num_workers=-1: must be >= 0"),
    ("model.connector.vision_heads=0", "model.connector.vision_heads=0: must be >= 1"),
    ("trainer.precision=16bit", "trainer.precision=16bit: choose one of 16-true"),
    ("trainer.accelerator=gpus", "trainer.accelerator=gpus: choose one of auto, cpu, cuda, gpu, mps, tpu"),
    ("trainer.devices=0", "trainer.devices=0: give a number of devices >= 1"),
    ("trainer.devices=abc", "trainer.devices=abc: give a number of devices >= 1"),
])
def test_fit_values_out_of_range_are_refused_by_key(override, message):
    with pytest.raises(UserError) as e:
        _fit(override)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize("override", ["trainer.devices=2", "trainer.devices=[0,1]", "trainer.devices=auto",
                                      "trainer.devices=-1", "trainer.max_steps=-1", "trainer.precision=bf16-mixed",
                                      "trainer.precision=16", "model.cfg_dropout=0"])
def test_fit_values_in_range_pass(override):
    _fit(override)


@pytest.mark.parametrize("overrides,message", [
    (["sampling.guidance_small=inf"], "sampling.guidance_small=inf: must be a finite number"),
    (["sampling.shift=-1"], "sampling.shift=-1.0: must be > 0"),
    (["sampling.batch_size=0"], "sampling.batch_size=0: must be >= 1"),
    (["bridge.gamma_hf=1.5"], "bridge.gamma_hf=1.5: must be >= 0.0 and <= 1.0"),
    (["bridge.strategy=switch", "bridge.switch_step=1000"],
     "bridge.switch_step=1000: the schedule has sampling.num_steps=8 steps; choose a step in 0..8"),
    (["bridge.sigma_min=0.8"], "bridge.sigma_min=0.8 must be below bridge.sigma_max=0.7"),
])
def test_sample_values_out_of_range_are_refused_by_key(overrides, message):
    with pytest.raises(UserError) as e:
        _sample(*overrides)
    assert str(e.value) == message or str(e.value).startswith(message), str(e.value)


def test_every_recipes_defaults_are_in_range():
    """The ranges agree with every shipped value: each recipe composes and validates."""
    for recipe in sorted(p.stem for p in (ROOT / "recipes" / "recipe").glob("*.yaml")):
        _fit(f"recipe={recipe}", "data.shards=x") if recipe != "tiny" else _fit()
    for recipe in sorted(p.stem for p in (ROOT / "recipes" / "sample" / "recipe").glob("*.yaml")):
        _sample(f"recipe={recipe}")


def test_a_float_field_given_as_inf_in_a_yaml_value_is_refused():
    cfg = OmegaConf.merge(OmegaConf.structured(Sample), {"sampling": {"guidance_large": float("inf")}})
    with pytest.raises(UserError, match="sampling.guidance_large=inf"):
        check_ranges(cfg, Sample)


def test_a_range_mistake_is_one_line_before_torch_is_imported():
    script = ("import runpy, sys\nsys.argv = ['tools/fit.py', 'recipe=tiny', 'trainer.accumulate_grad_batches=0']\n"
              "try:\n    runpy.run_path('tools/fit.py', run_name='__main__')\nexcept SystemExit as e:\n"
              "    print(e.code, 'torch' in sys.modules, 'lightning' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stderr == "error: trainer.accumulate_grad_batches=0: must be >= 1\n"
    assert r.stdout.split() == ["2", "False", "False"]
