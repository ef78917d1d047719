"""A misspelt or mistyped key anywhere in the config — inside a variant's overrides, in ``pretrain.steps``, in
``pretrain.sd`` — is an error when the config is read (so a dry run fails before any job runs), naming the key
with its full path and the closest valid name."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sonic import config

ROOT = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((ROOT / "config.yaml").read_text())


def _variant(name: str, overrides: dict):
    def change(d: dict) -> None:
        d["training"]["variants"][name] = overrides
        d["training"]["run_variants"] = ["full", name]
    return change


CASES = {
    "variant stage1": (_variant("oops", {"stage1": {"alpha_msee": 1.0}}),
                       "training.variants.oops.stage1.alpha_msee: unknown key; did you mean 'alpha_mse'?"),
    "variant stage2": (_variant("oops", {"stage2": {"lr_adapterz": 1e-4}}),
                       "training.variants.oops.stage2.lr_adapterz: unknown key; did you mean 'lr_adapters'?"),
    "variant projector": (_variant("oops", {"projector": {"num_tokenz": 1}}),
                          "training.variants.oops.projector.num_tokenz: unknown key; did you mean 'num_tokens'?"),
    "variant adapters": (_variant("oops", {"adapters": {"placment": "all_layers"}}),
                         "training.variants.oops.adapters.placment: unknown key; did you mean 'placement'?"),
    "variant wrong type": (_variant("oops", {"stage2": {"steps": "many"}}),
                           "training.variants.oops.stage2.steps: 'many' is not of type 'integer'"),
    "variant out of range": (_variant("oops", {"stage2": {"null_audio_prob": 1.5}}),
                             "training.variants.oops.stage2.null_audio_prob: 1.5 is greater than the maximum of 1"),
    "pretrain.steps model": (lambda d: d["pretrain"]["steps"].update(clipp=300),
                             "pretrain.steps.clipp: unknown key; did you mean 'clip'?"),
    "pretrain.sd key": (lambda d: d["pretrain"]["sd"].update(unet_stepz=300),
                        "pretrain.sd.unet_stepz: unknown key; did you mean 'unet_steps'?"),
    "pretrain.clip key (generated schema)": (lambda d: d["pretrain"].update(clip={"batch_sise": 8}),
                                             "pretrain.clip.batch_sise: unknown key; did you mean 'batch_size'?"),
    "competitor key": (lambda d: d["competitors"]["audiotoken"].update(lora_rnak=2),
                       "competitors.audiotoken.lora_rnak: unknown key; did you mean 'lora_rank'?"),
}


REJECTED = {  # values of the right type that a stage's dataclass rejects: the message names where
    "variant stage1 weights": (_variant("oops", {"stage1": {"alpha_mse": 0.0, "alpha_contrastive": 0.0}}),
                               "overlay.yaml: training.variants.oops.stage1: "),
    "a recipe's value": (lambda d: d["pretrain"].update(clip={"image_size": 60}), "overlay.yaml: pretrain.clip: "),
    "a nested recipe": (lambda d: d["pretrain"].update(wav2clip={"model": {"blocks": [1, 1]}}),
                        "overlay.yaml: pretrain.wav2clip.model: "),
}


def _error(change) -> str:
    """The message of the ConfigError that reading the shipped config with ``change`` applied raises."""
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(data, "overlay.yaml")
    return str(err.value)


@pytest.mark.parametrize("case", list(REJECTED))
def test_a_value_a_stage_rejects_fails_when_the_config_is_read(case):
    change, prefix = REJECTED[case]
    assert _error(change).startswith(prefix), _error(change)


def test_a_number_yaml_reads_as_text_gets_a_hint():
    data = copy.deepcopy(BASE)
    data["training"]["stage1"]["lr"] = yaml.safe_load("lr: 1e-4")["lr"]  # PyYAML (YAML 1.1): the text '1e-4'
    with pytest.raises(config.ConfigError, match=r"write it with a dot, e\.g\. 1\.0e-4"):
        config.from_dict(data, "overlay.yaml")


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_key_is_named_with_its_closest_valid_name(case):
    change, line = CASES[case]
    message = _error(change)
    assert f"  {line}" in message.splitlines(), message


def test_a_variant_without_stage1_and_the_shipped_configs_pass():
    data = copy.deepcopy(BASE)
    _variant("mine", {"stage1": None, "stage2": {"steps": 10}, "adapters": {"placement": "all_layers"}})(data)
    assert config.from_dict(data).variant("mine")["stage1"] is None
    from sonic.variants import merge

    for path in sorted((ROOT / "workflow/configs").glob("*.yaml")):  # overlays of config.yaml, as `--configfile`
        config.from_dict(merge(BASE, yaml.safe_load(path.read_text())), str(path))


def test_the_pretrain_step_names_are_the_pretrainable_models():
    from sonic.demo.commands import PRETRAIN_INPUTS

    names = config.schema()["properties"]["pretrain"]["properties"]["steps"]["propertyNames"]["enum"]
    assert sorted(names) == sorted(PRETRAIN_INPUTS)


def test_a_dry_run_with_a_misspelt_variant_key_fails_before_any_job(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"training": {"run_variants": ["full", "oops"], "variants": {
        "full": {}, "oops": {"stage2": {"lr_adapterz": 1e-4}}}}}))
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-s", str(ROOT / "Snakefile"),
                          "-d", str(tmp_path), "--configfile", str(ROOT / "config.yaml"), str(overlay)],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "training.variants.oops.stage2.lr_adapterz: unknown key; did you mean 'lr_adapters'?" in text
    assert "rule train_stage2" not in text and "Job stats" not in text
