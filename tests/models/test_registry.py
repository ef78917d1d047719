"""How a Stable Diffusion folder's scheduler config becomes the DDIM sampler (sonic.models.registry)."""

import json

from diffusers import PNDMScheduler

from sonic.config import from_dict
from sonic.models import registry
from tests.tiny import tiny_config_dict, write_sd_folder


def test_a_pndm_config_without_clip_sample_gives_sds_ddim_not_ddims_default(tmp_path, caplog):
    """SD-1.x folders save a PNDM config; one without clip_sample (diffusers' PNDMScheduler writes none) must not
    give DDIM's default clip_sample=True, which clips latent x_0 predictions and stops DDIM inversion (found by the
    paper-size rehearsal, docs/rehearsal.md)."""
    sd = write_sd_folder(tmp_path / "sd")
    PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                  set_alpha_to_one=False, steps_offset=1).save_pretrained(sd / "scheduler")
    assert "clip_sample" not in json.loads((sd / "scheduler" / "scheduler_config.json").read_text())
    scheduler = registry.ddim_scheduler(str(sd))
    assert type(scheduler).__name__ == "DDIMScheduler" and scheduler.config.clip_sample is False
    assert scheduler.config.steps_offset == 1 and scheduler.config.set_alpha_to_one is False
    assert "no clip_sample" in caplog.text

    config = json.loads((sd / "scheduler" / "scheduler_config.json").read_text())
    (sd / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(config, clip_sample=True)))
    assert registry.ddim_scheduler(str(sd)).config.clip_sample is True  # an explicit setting is kept
    cfg = from_dict(tiny_config_dict(sd))
    assert registry.load_stable_diffusion(cfg).scheduler.config.clip_sample is True
