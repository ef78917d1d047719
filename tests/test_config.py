"""Configuration: both shipped profiles validate; bad configs give messages naming the key."""

from pathlib import Path

import pytest
import yaml

from sonic import config
from sonic.registry import check_location

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", ["config.yaml", "workflow/configs/paper.yaml"])
def test_shipped_configs_validate(path):
    cfg = config.load(ROOT / path)
    assert cfg.adapters.placement == "mid_and_decoder"
    assert cfg.generation.steps == 50 and cfg.generation.guidance_scale == 8.0
    assert config.unet_architecture(cfg)["_class_name"] == "UNet2DConditionModel"


def test_bad_values_name_the_key(tmp_path):
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["adapters"]["placement"] = "everywhere"
    data["generation"]["steps"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert "adapters.placement" in str(err.value) and "generation.steps" in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(config.ConfigError, match="mapping"):
        config.load(tmp_path / "list.yaml")


def test_model_locations(tmp_path):
    with pytest.raises(config.ConfigError, match=r"models.sd: .*does not exist"):
        check_location("sd", str(tmp_path / "absent"))
    (tmp_path / "sd" / "unet").mkdir(parents=True)
    with pytest.raises(config.ConfigError, match=r"models.sd: .*lacks \['vae'\]"):
        check_location("sd", str(tmp_path / "sd"), subfolders=("unet", "vae"))
    assert check_location("clap", "hub:laion/clap-htsat-unfused") == "laion/clap-htsat-unfused"
    with pytest.raises(config.ConfigError, match="models.clap is not set"):
        check_location("clap", None)
