"""The training loop: checkpoints with retention, kill-and-resume equals an uninterrupted run, logs."""

import csv

import pytest
import torch

from sonic.training import loop


class Killed(Exception):
    pass


def make(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model[0].bias.requires_grad_(False)  # a frozen parameter stays out of checkpoints
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def step_fn(kill_at=None):
    def step(model, gen, step):
        if step == kill_at:
            raise Killed
        x = torch.randn(16, 4, generator=gen)
        y = x.sum(1, keepdim=True).sin()
        loss = (model(x) - y).pow(2).mean()
        return loss, {"half": float(loss.detach()) / 2}

    return step


SETTINGS = loop.LoopSettings(steps=7, seed=3, checkpoint_every=2, checkpoints_total_limit=2, progress=False)


def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path):
    model, opt, sched = make()
    loop.run(tmp_path / "straight", model, opt, sched, step_fn(), SETTINGS)

    model2, opt2, sched2 = make()
    with pytest.raises(Killed):
        loop.run(tmp_path / "killed", model2, opt2, sched2, step_fn(kill_at=6), SETTINGS)
    assert [s for s, _ in loop.checkpoints(tmp_path / "killed")] == [2, 4]
    model3, opt3, sched3 = make()  # a fresh process, its trainable weights scrambled: checkpoint-4 restores them
    with torch.no_grad():
        for p in model3.parameters():
            if p.requires_grad:
                p.normal_()
    summary = loop.run(tmp_path / "killed", model3, opt3, sched3, step_fn(), SETTINGS)
    assert summary["resumed_from"] == 4
    for (k, a), b in zip(model.state_dict().items(), model3.state_dict().values(), strict=True):
        if k != "0.bias":
            assert torch.equal(a, b), k

    rows = list(csv.DictReader((tmp_path / "killed" / "losses.csv").open()))
    straight = list(csv.DictReader((tmp_path / "straight" / "losses.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 8))
    assert [r["loss"] for r in rows] == [r["loss"] for r in straight]
    assert set(rows[0]) == {"step", "loss", "half", "lr"}
    assert (tmp_path / "killed" / "loss.png").stat().st_size > 0


def test_retention_keeps_the_newest_checkpoints(tmp_path):
    model, opt, sched = make()
    loop.run(tmp_path, model, opt, sched, step_fn(), SETTINGS)
    assert [s for s, _ in loop.checkpoints(tmp_path)] == [6, 7]
    (tmp_path / "checkpoint-9").mkdir()  # incomplete (no state.json): ignored
    assert [s for s, _ in loop.checkpoints(tmp_path)] == [6, 7]
    saved = loop.load_file(str(tmp_path / "checkpoint-7" / "trainable.safetensors"))
    assert "0.bias" not in saved and set(saved) == {"0.weight", "2.weight", "2.bias"}


def test_a_finished_run_does_not_train_again(tmp_path):
    model, opt, sched = make()
    loop.run(tmp_path, model, opt, sched, step_fn(), SETTINGS)
    model2, opt2, sched2 = make(seed=5)
    summary = loop.run(tmp_path, model2, opt2, sched2, step_fn(kill_at=1), SETTINGS)  # would raise if it stepped
    assert summary["resumed_from"] == 7
    assert torch.equal(model.state_dict()["2.weight"], model2.state_dict()["2.weight"])


def test_non_finite_loss_stops_with_the_step(tmp_path):
    model, opt, sched = make()

    def bad(model, gen, step):
        return torch.tensor(float("nan"), requires_grad=True), {}

    with pytest.raises(FloatingPointError, match="step 1"):
        loop.run(tmp_path, model, opt, sched, bad, SETTINGS)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        loop.LoopSettings(steps=0)
    with pytest.raises(ValueError):
        loop.LoopSettings(steps=1, mixed_precision="fp8")


def test_checkpoints_of_another_run_are_not_resumed(tmp_path):
    model, opt, sched = make()
    loop.run(tmp_path, model, opt, sched, step_fn(), SETTINGS, run_id="old")
    model2, opt2, sched2 = make()
    summary = loop.run(tmp_path, model2, opt2, sched2, step_fn(), SETTINGS, run_id="new")
    assert summary["resumed_from"] == 0  # started over
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # ... and, being seeded by (seed, step), ended where the old run did
    assert [s for s, _ in loop.checkpoints(tmp_path)] == [6, 7]


def test_fingerprint_follows_inputs_and_settings(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "a.txt").write_text("1")
    first = loop.fingerprint([data, "hub:org/model"], lr=1e-4)
    assert loop.fingerprint([data, "hub:org/model"], lr=1e-4) == first
    assert loop.fingerprint([data, "hub:org/model"], lr=2e-4) != first
    (data / "a.txt").write_text("22")
    assert loop.fingerprint([data, "hub:org/model"], lr=1e-4) != first


def test_budget_factor_scales_the_configured_steps():
    from sonic.config import ConfigError
    from sonic.training.run import scaled_steps

    assert scaled_steps(200, 1.0) == 200 and scaled_steps(200, 3) == 600 and scaled_steps(200, 0.25) == 50
    assert scaled_steps(5, 0.01) == 1  # never zero steps
    with pytest.raises(ConfigError, match="positive"):
        scaled_steps(200, 0)


def _resume_after_kill(tmp_path, break_newest):
    """Kill a run after its checkpoints 2 and 4, break checkpoint-4 with ``break_newest``, resume in a fresh process:
    returns the resumed model, the summary and the uninterrupted run's model."""
    model, opt, sched = make()
    loop.run(tmp_path / "straight", model, opt, sched, step_fn(), SETTINGS)
    model2, opt2, sched2 = make()
    with pytest.raises(Killed):
        loop.run(tmp_path / "killed", model2, opt2, sched2, step_fn(kill_at=6), SETTINGS)
    break_newest(tmp_path / "killed" / "checkpoint-4")
    model3, opt3, sched3 = make()
    with torch.no_grad():
        for p in model3.parameters():
            if p.requires_grad:
                p.normal_()
    summary = loop.run(tmp_path / "killed", model3, opt3, sched3, step_fn(), SETTINGS)
    return model3, summary, model


@pytest.mark.parametrize("broken_file, contents", [
    ("state.json", '{"step": 4, "finger'),  # torn mid-write
    ("state.json", ""),
    ("trainable.safetensors", None),  # truncated to half
    ("optimizer.pt", None),
])
def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(tmp_path, caplog, broken_file, contents):
    def tear(ckpt):
        f = ckpt / broken_file
        if contents is None:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        else:
            f.write_text(contents)

    with caplog.at_level("WARNING", logger=loop.__name__):
        model3, summary, straight = _resume_after_kill(tmp_path, tear)
    assert summary["resumed_from"] == 2
    assert any("checkpoint-4" in r.getMessage() and "cannot be read" in r.getMessage() for r in caplog.records)
    for (k, a), b in zip(straight.state_dict().items(), model3.state_dict().values(), strict=True):
        if k != "0.bias":
            assert torch.equal(a, b), k
    out = tmp_path / "killed"
    rows = list(csv.DictReader((out / "losses.csv").open()))
    straight_rows = list(csv.DictReader((tmp_path / "straight" / "losses.csv").open()))
    assert [r["loss"] for r in rows] == [r["loss"] for r in straight_rows]
    assert [s for s, _ in loop.checkpoints(out)] == [6, 7]
    assert (out / "checkpoint-4.broken" / broken_file).is_file()  # set aside for inspection, not resumed again


def test_a_checkpoint_of_another_model_is_an_error_not_a_skip(tmp_path):
    model, opt, sched = make()
    loop.run(tmp_path, model, opt, sched, step_fn(), SETTINGS)
    other = torch.nn.Linear(4, 1)
    opt2 = torch.optim.AdamW(other.parameters())
    with pytest.raises(ValueError, match="does not match the model"):
        loop.run(tmp_path, other, opt2, torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 1.0), step_fn(), SETTINGS)
    assert [s for s, _ in loop.checkpoints(tmp_path)] == [6, 7]  # nothing set aside


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    loop.write_atomic(target, '{"step": 1}\n')
    loop.write_atomic(target, '{"step": 2}\n')
    assert target.read_text() == '{"step": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

    def fail(src, dst):  # killed between writing the temporary and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        loop.write_atomic(target, '{"step": 3}\n')
    assert target.read_text() == '{"step": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_adamw_decays_matrices_and_kernels_only():
    from sonic.training.loop import adamw

    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 3), torch.nn.LayerNorm(3),
                                torch.nn.Conv1d(3, 2, 3))
    names = dict(model.named_parameters())

    def grouped(opt):
        by_id = {id(p): n for n, p in names.items()}
        return {g["weight_decay"]: sorted(by_id[id(p)] for p in g["params"]) for g in opt.param_groups}

    assert grouped(adamw(model, 1e-3, 0.1)) == {0.1: ["0.weight", "1.weight", "3.weight"],
                                                 0.0: ["1.bias", "2.bias", "2.weight", "3.bias"]}
    kept = grouped(adamw(model, 1e-3, 0.1, keep=("0.",)))  # a name fragment: the embedding table is not decayed
    assert kept[0.1] == ["1.weight", "3.weight"] and "0.weight" in kept[0.0]
    everything = adamw(model, 1e-3, 0.1, decay_all=True, betas=(0.9, 0.98))
    assert len(everything.param_groups) == 1 and everything.param_groups[0]["betas"] == (0.9, 0.98)
