"""The shared sampler: conditionings, the guided DDIM loop and its per-step hooks, seeds, the audio-major grid."""

import pytest
import torch

from sonic.models.sampling import Branch, Conditioning, FrozenSDSampler, guided_noise, initial_latents
from tests.tiny import CROSS_DIM, tiny_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_tokenizer

STEPS = 3


@pytest.fixture
def sampler(tmp_path):
    tok = write_tokenizer(tmp_path / "tok")
    return FrozenSDSampler(unet=tiny_unet(), vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tok)), tokenizer=tok,
                           scheduler=tiny_scheduler())


def states(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 77, CROSS_DIM, generator=torch.Generator().manual_seed(seed))


def test_conditioning_slices_and_concatenates_both_parts():
    c = Conditioning(states(3), torch.randn(3, 5, CROSS_DIM))
    assert len(c) == 3 and torch.equal(c[1:].audio_tokens, c.audio_tokens[1:])
    both = Conditioning.cat([c[:1], c[1:]])
    assert torch.equal(both.encoder_hidden_states, c.encoder_hidden_states)
    assert torch.equal(both.cross_attention_kwargs["audio_tokens"], c.audio_tokens)
    assert Conditioning(states(1)).cross_attention_kwargs is None
    with pytest.raises(ValueError, match="audio tokens"):
        Conditioning.cat([c, Conditioning(states(1))])


def test_one_step_is_the_guided_ddim_step(sampler):
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    uncond, cond = Conditioning(states(2, 1)), Conditioning(states(2, 2))
    got = sampler.denoise(x, uncond, cond, 1, guidance_scale=7.0)
    t = sampler.scheduler.timesteps[0]
    with torch.no_grad():
        eps_u = sampler.unet(x, t, uncond.encoder_hidden_states).sample
        eps_c = sampler.unet(x, t, cond.encoder_hidden_states).sample
    expected = sampler.scheduler.step(guided_noise(eps_u, eps_c, 7.0), t, x).prev_sample
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_branch_rides_along_without_changing_the_result(sampler):
    """Items put ahead of the batch by ``before_step`` enter the UNet call and nothing else."""
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    uncond, cond = Conditioning(states(2, 3)), Conditioning(states(2, 4))
    seen, after, batches = [], [], []
    handle = sampler.unet.register_forward_pre_hook(lambda _m, a: batches.append(a[0].shape[0]))

    def before_step(i):
        seen.append(i)
        return Branch(torch.randn(1, 4, 8, 8), Conditioning(states(1, 5))) if i % 2 == 0 else None

    try:
        with_branch = sampler.denoise(x, uncond, cond, STEPS, 8.0, before_step=before_step,
                                      after_step=lambda i, z: after.append((i, z.clone())))
    finally:
        handle.remove()
    plain = sampler.denoise(x, uncond, cond, STEPS, 8.0)
    torch.testing.assert_close(with_branch, plain, rtol=1e-4, atol=1e-5)
    assert seen == [0, 1, 2] and batches == [5, 4, 5]
    assert [i for i, _ in after] == [0, 1, 2] and torch.equal(after[-1][1], with_branch)


def test_sample_starts_from_the_seeds_noise_and_generate_is_audio_major(sampler):
    first = []
    handle = sampler.unet.register_forward_pre_hook(lambda _m, a: first.append(a[0].chunk(2)[0].clone()))
    null = sampler.encode_text([""])
    try:
        images = sampler.sample([3, 4], Conditioning(null.expand(2, -1, -1)), Conditioning(states(2)), 1, 8.0)
    finally:
        handle.remove()
    expected = torch.stack([initial_latents(s, (4, 8, 8)) for s in (3, 4)]) * sampler.scheduler.init_noise_sigma
    assert torch.equal(first[0], expected)
    assert images.shape == (2, 3, 16, 16) and 0 <= images.min() and images.max() <= 1

    embeds = torch.randn(2, 6)
    calls = []

    def conditions(batch):
        calls.append(batch.clone())
        n = len(batch)
        return Conditioning(null.expand(n, -1, -1)), Conditioning(batch[:, :1, None].expand(n, 77, CROSS_DIM))

    grid = sampler.generate(embeds, conditions, [3, 4], 2, 8.0, None, None, batch_size=3, progress=False)
    assert grid.shape == (4, 3, 16, 16)
    assert [len(c) for c in calls] == [3, 1]  # jobs (clip 0, 3), (0, 4), (1, 3) | (1, 4)
    assert torch.equal(calls[0], embeds[[0, 0, 1]]) and torch.equal(calls[1], embeds[[1]])
