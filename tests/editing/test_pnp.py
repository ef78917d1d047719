"""Plug-and-Play editing (paper §3.5): the injection schedule and sites, limits 0 and 1, hooks, cache, K audios, the
text-driven conditions on a UNet without adapters."""

import pytest
import torch

from sonic.editing.inversion import Inversion, InversionCache, ddim_invert, reconstruct
from sonic.editing.pnp import (AudioConditions, PnPConfig, PnPController, TextConditions, decoder_resnets, edit,
                               edit_latents)
from sonic.models.sampling import FrozenSDSampler
from tests.editing.conftest import audio_embeds
from tests.tiny import tiny_unet

STEPS = 4


def all_hooks(*modules):
    return [(name, h) for m in modules for name, sub in m.named_modules()
            for h in list(sub._forward_hooks.values()) + list(sub._forward_pre_hooks.values())]


class CountCalls:
    """Counts UNet forward calls (a removable pre-hook, removed on exit)."""

    def __init__(self, unet):
        self.unet, self.n = unet, 0

    def __enter__(self):
        self.handle = self.unet.register_forward_pre_hook(lambda *_: setattr(self, "n", self.n + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture
def inversion(pipe, source_image):
    return ddim_invert(pipe, source_image, STEPS)


def test_full_injection_on_the_source_path_reproduces_the_reconstruction(pipe, inversion):
    """Thresholds 1, the source's own (null) conditioning, guidance 1, and a source trajectory the model itself
    follows (the reconstruction path): target and source branch coincide at every step, so injecting every
    feature changes nothing and the edit is the reconstruction."""
    recon_path = reconstruct(pipe, inversion, trajectory=True)  # (T + 1, C, h, w)
    consistent = Inversion(recon_path, inversion.image)
    empty = TextConditions(pipe, pipe.encode_text([""]))
    z = edit_latents(pipe, consistent, empty, guidance_scale=1.0, config=PnPConfig(f_t=1.0, attn_t=1.0))
    torch.testing.assert_close(z, recon_path[:1], rtol=1e-4, atol=1e-4)
    images = edit(pipe, None, None, num_inference_steps=STEPS, guidance_scale=1.0, f_t=1.0, attn_t=1.0,
                  inversion=consistent)
    torch.testing.assert_close(images, pipe.decode(recon_path[:1]), rtol=1e-4, atol=1e-4)


def test_full_injection_with_null_conditioning_stays_near_the_reconstruction(pipe, inversion):
    """On the real inverted trajectory the injected features come from the inversion path, so the result differs
    from the reconstruction only as much as the two paths differ (a random tiny UNet inverts poorly)."""
    empty = TextConditions(pipe, pipe.encode_text([""]))
    z = edit_latents(pipe, inversion, empty, guidance_scale=1.0, config=PnPConfig(f_t=1.0, attn_t=1.0))
    recon = reconstruct(pipe, inversion)
    assert (z - recon).abs().max() < 0.2 * recon.abs().max()


def test_no_injection_equals_plain_generation_from_x_T(pipe, inversion):
    e = audio_embeds(2)
    z = edit_latents(pipe, inversion, AudioConditions(pipe, e, "a cube"), guidance_scale=8.0,
                     config=PnPConfig(f_t=0.0, attn_t=0.0), beta={"up3": 0.5})
    with pipe.beta({"up3": 0.5}):
        start = inversion.latents[-1][None].expand(2, -1, -1, -1)
        text, null_text = pipe.encode_text(["a cube"]), pipe.encode_text([""])
        plain = pipe.denoise(start, pipe.unconditional(2, null_text), pipe.conditional(e, text), STEPS, 8.0)
    torch.testing.assert_close(z, plain, rtol=1e-4, atol=1e-4)  # batch layouts differ: float reassociation


def test_controller_replaces_target_features_on_schedule(pipe, inversion):
    """The residual branch (conv2) of up_blocks[1].resnets[1] for steps < int(0.8 T), q/k of up4..11 for steps
    < int(0.5 T); the source item itself runs adapters-off."""
    unet = pipe.unet
    ctrl = PnPController(unet, PnPConfig(), num_steps=5, adapters=pipe.adapters)
    seen = {}
    attn1 = lambda b, a: unet.up_blocks[b].attentions[a].transformer_blocks[0].attn1  # noqa: E731
    sites = {"res": unet.up_blocks[1].resnets[1].conv2, "q5": attn1(1, 2).to_q, "k11": attn1(3, 2).to_k,
             "q3": attn1(1, 0).to_q}
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # [source, uncond, cond]
    ctx = torch.cat([pipe.encode_text([""])] * 2 + [pipe.encode_text(["a cube"])])
    tokens = torch.cat([pipe.projector.null_tokens(2), pipe.audio_tokens(audio_embeds(1))])
    same = lambda out: torch.equal(out[1], out[0]) and torch.equal(out[2], out[0])  # noqa: E731
    with torch.no_grad(), ctrl.hooks():
        handles = [m.register_forward_hook(lambda m, a, o, k=k: seen.__setitem__(k, o)) for k, m in sites.items()]
        for step, expect in [(0, dict(res=True, q5=True, k11=True)), (2, dict(res=True, q5=False, k11=False)),
                             (4, dict(res=False, q5=False, k11=False))]:
            ctrl.set_step(step, source_in_batch=True)
            out = unet(x, 500, ctx, cross_attention_kwargs={"audio_tokens": tokens}).sample
            assert {k: same(seen[k]) for k in expect} == expect, step
            assert not same(seen["q3"])  # layer 3 is not in the q/k set
        for h in handles:
            h.remove()
    base = pipe.unet(x[:1], 500, ctx[:1]).sample  # no audio tokens: the adapters-off model
    torch.testing.assert_close(out[:1], base, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sites", [((1, 1),), (4, 5)])
def test_residual_injection_replaces_the_residual_branch_not_the_shortcut(pipe, sites):
    """For a target item the injected block's output is (shortcut(target input) + source residual) / scale, with
    the source's conv2 output as the residual (pnp-diffusers, the authors' code); it differs from the source's
    output, so what the layers before the block gave the target survives."""
    unet = pipe.unet
    blocks = decoder_resnets(unet, sites)
    ctrl = PnPController(unet, PnPConfig(resnets=sites), num_steps=5, adapters=pipe.adapters)
    raw, io = {}, {}
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(2))  # [source, uncond, cond]
    ctx = torch.cat([pipe.encode_text([""])] * 2 + [pipe.encode_text(["a cube"])])
    tokens = torch.cat([pipe.projector.null_tokens(2), pipe.audio_tokens(audio_embeds(1))])
    # registered before the controller's hooks: conv2's own output, before the injection replaces it
    handles = [b.conv2.register_forward_hook(lambda m, a, o, k=k: raw.__setitem__(k, o.clone()))
               for k, b in enumerate(blocks)]
    with torch.no_grad(), ctrl.hooks():
        handles += [b.register_forward_hook(lambda m, a, o, k=k: io.__setitem__(k, (a[0].clone(), o.clone())))
                    for k, b in enumerate(blocks)]
        ctrl.set_step(0, source_in_batch=True)
        unet(x, 500, ctx, cross_attention_kwargs={"audio_tokens": tokens})
    for h in handles:
        h.remove()
    for k, block in enumerate(blocks):
        assert block.conv_shortcut is not None  # a real shortcut: the check below is not trivially true
        inp, out = io[k]
        with torch.no_grad():
            expected = (block.conv_shortcut(inp[1:]) + raw[k][:1].expand_as(raw[k][1:])) / block.output_scale_factor
        torch.testing.assert_close(out[1:], expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(out[1:], out[:1].expand_as(out[1:]), atol=1e-4)  # not the whole source output
        torch.testing.assert_close(out[:1], (block.conv_shortcut(inp[:1]) + raw[k][:1]) / block.output_scale_factor,
                                   rtol=1e-5, atol=1e-6)


def test_null_audio_source_branch_runs_the_adapted_unet_on_the_null_tokens(pipe, inversion):
    """``source_branch="base"`` zeroes the source's gated audio terms (the base UNet); ``"null_audio"`` (the
    authors') lets the source run the adapted UNet with the null tokens, which changes the edit."""
    unet = pipe.unet
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    ctx = torch.cat([pipe.encode_text([""])] * 2 + [pipe.encode_text(["a cube"])])
    tokens = torch.cat([pipe.projector.null_tokens(2), pipe.audio_tokens(audio_embeds(1))])
    outs = {}
    for branch in ("base", "null_audio"):
        ctrl = PnPController(unet, PnPConfig(f_t=0.0, attn_t=0.0, source_branch=branch), 5, adapters=pipe.adapters)
        with torch.no_grad(), ctrl.hooks():
            ctrl.set_step(0, source_in_batch=True)
            outs[branch] = unet(x, 500, ctx, cross_attention_kwargs={"audio_tokens": tokens}).sample
    with torch.no_grad():
        base = unet(x[:1], 500, ctx[:1]).sample  # no audio tokens: adapters off
        null = unet(x[:1], 500, ctx[:1], cross_attention_kwargs={"audio_tokens": tokens[:1]}).sample
    torch.testing.assert_close(outs["base"][:1], base, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs["null_audio"][:1], null, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(base, null, atol=1e-4)
    e = audio_embeds(1)
    kw = dict(num_inference_steps=STEPS, inversion=inversion)
    assert not torch.equal(edit(pipe, None, e, config=PnPConfig(source_branch="null_audio"), **kw),
                           edit(pipe, None, e, **kw))
    with pytest.raises(ValueError, match="source_branch"):
        PnPConfig(source_branch="adapted")


def test_decoder_numbers_name_residual_blocks(pipe):
    unet = pipe.unet
    assert decoder_resnets(unet, [4, 5, 6]) == [unet.up_blocks[1].resnets[1], unet.up_blocks[1].resnets[2],
                                                unet.up_blocks[2].resnets[0]]
    assert decoder_resnets(unet, [(1, 1)]) == [unet.up_blocks[1].resnets[1]]
    with pytest.raises(ValueError, match="no decoder residual block"):
        decoder_resnets(unet, [(1, 7)])
    with pytest.raises(ValueError, match="attention layer"):
        PnPController(unet, PnPConfig(attn_layers=("up1",)), 4)


def test_no_hooks_remain_after_an_edit_or_an_error(pipe, inversion):
    modules = (pipe.unet, pipe.vae, pipe.text_encoder, pipe.projector)
    assert all_hooks(*modules) == []
    edit(pipe, None, audio_embeds(2), num_inference_steps=STEPS, inversion=inversion)
    assert all_hooks(*modules) == []

    def fail(step, latents):
        if step == 1:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        edit(pipe, None, audio_embeds(1), num_inference_steps=STEPS, inversion=inversion, callback=fail)
    assert all_hooks(*modules) == []
    assert pipe.adapters.get_beta() == {name: 1.0 for name in pipe.adapters.names}


def test_cache_skips_the_second_inversion(pipe, source_image, tmp_path):
    cache = InversionCache(tmp_path / "cache")
    e = audio_embeds(1)
    with CountCalls(pipe.unet) as first:
        a = edit(pipe, source_image, e, num_inference_steps=STEPS, cache=cache)
    with CountCalls(pipe.unet) as second:
        b = edit(pipe, source_image, e, num_inference_steps=STEPS, cache=cache)
    assert first.n == 2 * STEPS and second.n == STEPS  # inversion + edit, then the edit alone
    assert (cache.hits, cache.misses) == (1, 1)
    assert torch.equal(a, b)


def test_k_audios_share_one_inversion_and_match_single_edits(pipe, source_image):
    e = audio_embeds(3, seed=4)
    with CountCalls(pipe.unet) as calls:
        images = edit(pipe, source_image, e, num_inference_steps=STEPS, batch_size=2)
    assert images.shape == (3, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert calls.n == STEPS + 2 * STEPS  # one inversion, two batches of edits
    single = edit(pipe, source_image, e[2:], num_inference_steps=STEPS)
    torch.testing.assert_close(images[2:], single, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(images[0], images[1], atol=1e-3)  # different audios, different edits


def test_text_only_pnp_ignores_the_adapters(pipe, inversion):
    kw = dict(num_inference_steps=STEPS, inversion=inversion, prompt="a red cube")
    a = edit(pipe, None, None, **kw)
    with torch.no_grad():
        for _, m in pipe.adapters.modules():
            m.gamma.fill_(-0.5)
    assert torch.equal(edit(pipe, None, None, **kw), a)
    assert not torch.equal(edit(pipe, None, None, num_inference_steps=STEPS, inversion=inversion), a)


def test_controls_change_the_edit(pipe, inversion):
    kw = dict(num_inference_steps=STEPS, inversion=inversion)
    e = audio_embeds(1)
    base = edit(pipe, None, e, **kw)
    assert not torch.equal(edit(pipe, None, e, beta={"up5": 0.0}, **kw), base)
    assert not torch.equal(edit(pipe, None, e, f_t=0.25, **kw), base)
    with pytest.raises(ValueError, match="steps"):
        edit(pipe, None, e, num_inference_steps=STEPS + 1, inversion=inversion)
    with pytest.raises(ValueError, match="f_t"):
        PnPConfig(f_t=1.5)


def test_text_conditions_need_no_adapters(pipe, inversion):
    """The text-driven baselines run on the base UNet: the same edits as through the adapted pipeline, whose gated
    layers give their text-only output without audio tokens."""
    base = FrozenSDSampler(unet=tiny_unet(), vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                           scheduler=pipe.scheduler)
    kw = dict(num_inference_steps=STEPS, inversion=inversion)
    states = pipe.encode_text(["rain", "fire", "rain"])
    edits = edit(base, None, conditions=TextConditions(base, states), batch_size=2, **kw)
    assert edits.shape == (3, 3, 16, 16)
    assert torch.equal(edits, edit(pipe, None, conditions=TextConditions(pipe, states), batch_size=2, **kw))
    torch.testing.assert_close(edits[2:], edit(base, None, prompt="rain", **kw), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(edits[0], edits[2], rtol=1e-4, atol=1e-4)  # the same label in other batches
    assert not torch.allclose(edits[0], edits[1], atol=1e-3)
    with pytest.raises(ValueError, match="not both"):
        edit(pipe, None, audio_embeds(1), conditions=TextConditions(pipe, states), **kw)
