"""The one training loop of both stages (paper §3.3-3.4, STYLE "one training loop, configured twice").

An Accelerate loop (device placement, mixed precision, multi-GPU when launched with ``accelerate launch``) with:

* randomness as a function of (seed, step, process): each step draws its batch, noise and dropout from a
  generator seeded by :func:`step_generator`, so a resumed run sees exactly the batches the uninterrupted run
  would have seen, with no RNG state to save;
* ``checkpoint-<step>`` folders every ``checkpoint_every`` steps holding only the trainable parameters, the
  optimizer and the LR schedule (never the frozen UNet), the oldest removed beyond ``checkpoints_total_limit``,
  and automatic resume from the latest complete one when the run is started again (diffusers'
  ``train_text_to_image.py`` pattern); ``state.json`` is written last and atomically, and a checkpoint that
  cannot be read back (a torn file) is set aside with a warning and the one before it resumed;
* ``losses.csv`` (one row per step), ``loss.png`` (the curve) and a progress bar with ETA.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sonic.config import TrainingConfig

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "state.json"  # written last: a checkpoint without it is incomplete and ignored


_TRAINING = TrainingConfig()  # the config's defaults of the loop settings (one place: sonic.config)


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    seed: int = 0
    checkpoint_every: int = _TRAINING.checkpoint_every
    checkpoints_total_limit: int | None = _TRAINING.checkpoints_total_limit
    mixed_precision: str = _TRAINING.mixed_precision  # no | fp16 | bf16
    max_grad_norm: float | None = _TRAINING.max_grad_norm
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.checkpoint_every < 1:
            raise ValueError(f"steps and checkpoint_every must be >= 1, got {self.steps}, {self.checkpoint_every}")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(f"checkpoints_total_limit must be >= 1 or null, got {self.checkpoints_total_limit}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")


def fingerprint(inputs: list[str | Path], **settings) -> str:
    """A digest of a run's settings and of its input files (path, size, modification time; folders walked), stored
    in every checkpoint: a checkpoint is resumed only by the run it belongs to, never after the data, a base
    model or a setting changed."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for item in inputs:
        root = Path(item)
        if not root.exists():  # e.g. a hub id: its name is all there is
            h.update(f"{item};".encode())
            continue
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            st = f.stat()
            h.update(f"{f}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def step_generator(seed: int, step: int, process: int = 0) -> torch.Generator:
    """The CPU generator that draws everything random in one step of one process."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + process)


# A step: (model, generator, step) -> (loss, {name: float}) for the CSV.
StepFn = Callable[[torch.nn.Module, torch.Generator, int], tuple[torch.Tensor, dict[str, float]]]


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, *, keep: tuple[str, ...] = (),
          decay_all: bool = False, **kwargs) -> torch.optim.AdamW:
    """The one AdamW rule of the miniature models' pretraining (docs/pretrained-models.md): decoupled
    weight decay on the weight matrices and convolution kernels (``ndim >= 2``), none on biases and normalisation
    scales (``ndim < 2``: decay would pull a norm's gain towards zero, not regularise a mapping), and none on a
    parameter whose name contains one of ``keep`` (learned input vectors: token, position and patch embeddings,
    query tokens, which decay shrinks towards zero). ``decay_all``: decay on every parameter (torch's own default),
    the recipe the miniature CLAP and Wav2CLIP were tuned with. ``kwargs``: betas, eps."""
    if decay_all:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, **kwargs)
    named = list(model.named_parameters())
    decayed = [p.ndim >= 2 and not any(k in n for k in keep) for n, p in named]
    groups = [{"params": [p for (_, p), d in zip(named, decayed) if d], "weight_decay": weight_decay},
              {"params": [p for (_, p), d in zip(named, decayed) if not d], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, **kwargs)


def checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``out_dir``, oldest first."""
    found = []
    for path in out_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = path.name[len(CHECKPOINT_PREFIX) :]
        if suffix.isdigit() and (path / STATE_FILE).is_file():
            found.append((int(suffix), path))
    return sorted(found)


def _save_checkpoint(out_dir: Path, step: int, model, optimizer, scheduler, limit: int | None,
                     run_id: str = "") -> Path:
    path = out_dir / f"{CHECKPOINT_PREFIX}{step}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in trainable_parameters(model).items()}
    save_file(tensors, str(path / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path / "optimizer.pt")
    write_atomic(path / STATE_FILE, json.dumps({"step": step, "fingerprint": run_id}) + "\n")
    if limit is not None:
        for _, old in checkpoints(out_dir)[:-limit]:
            shutil.rmtree(old)
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one, never part of it: a
    temporary file in the same folder, flushed and synced to disk, then renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass(frozen=True)
class _Checkpoint:
    step: int
    tensors: dict[str, torch.Tensor]
    states: dict


def _read_state(path: Path) -> dict:
    state = json.loads((path / STATE_FILE).read_text())
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"{STATE_FILE} has no integer 'step': {state!r}")
    return state


def _read_checkpoint(path: Path) -> _Checkpoint:
    """Everything in a checkpoint folder, read before any of it is applied; raises if a file is torn."""
    state = _read_state(path)
    tensors = load_file(str(path / "trainable.safetensors"))
    states = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    if not isinstance(states, dict) or not {"optimizer", "scheduler"} <= states.keys():
        raise ValueError(f"optimizer.pt lacks 'optimizer' or 'scheduler': keys {sorted(states)[:5]}")
    return _Checkpoint(state["step"], tensors, states)


def _apply_checkpoint(ckpt: _Checkpoint, path: Path, model, optimizer, scheduler) -> int:
    params, tensors = trainable_parameters(model), ckpt.tensors
    if tensors.keys() != params.keys():  # not a torn file but a different model: an error, never a skip
        missing, extra = sorted(params.keys() - tensors.keys()), sorted(tensors.keys() - params.keys())
        raise ValueError(f"{path}: checkpoint does not match the model (missing {missing[:5]}, unexpected {extra[:5]})")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name].to(p.dtype))
    optimizer.load_state_dict(ckpt.states["optimizer"])
    scheduler.load_state_dict(ckpt.states["scheduler"])
    return ckpt.step


def read_rows(csv_path: Path, up_to: int) -> list[dict]:
    """The rows of a run's ``losses.csv`` up to step ``up_to`` (none when the file is absent)."""
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["step"]) <= up_to]


def plot_losses(csv_path: Path, png_path: Path, title: str = "") -> None:
    """The loss curve of ``losses.csv`` (every column except step and lr), log-scaled when it spans decades."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(csv_path, math.inf)
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key in rows[0]:
        if key in ("step", "lr") or not rows[0][key]:
            continue
        ax.plot(steps, [float(r[key]) for r in rows], label=key, linewidth=1)
    values = [float(r["loss"]) for r in rows if float(r["loss"]) > 0]
    if values and max(values) / min(values) > 30:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def is_main_process() -> bool:
    """Whether this process writes a run's results: the only process, or rank 0 of an ``accelerate launch``
    (``sonic train --processes N``); the others return after the loop."""
    from accelerate import PartialState

    return PartialState().is_main_process


def run(
    out_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step_fn: StepFn,
    settings: LoopSettings,
    accelerator=None,
    desc: str = "train",
    run_id: str = "",
) -> dict:
    """Train ``model`` (only its parameters with ``requires_grad``) for ``settings.steps`` steps, resuming from the
    latest checkpoint in ``out_dir`` whose ``run_id`` (see :func:`fingerprint`) matches; checkpoints of another
    run are removed. Returns a summary (steps run, resumed step, seconds, last losses)."""
    from accelerate import Accelerator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = settings
    acc = accelerator or Accelerator(mixed_precision=s.mixed_precision, cpu=not torch.cuda.is_available())
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    raw_model = acc.unwrap_model(model)

    start_step = _resume(out, raw_model, optimizer, scheduler, run_id, desc, acc.is_main_process)
    if start_step:
        log.info("%s: resumed from %s (step %d of %d)", desc, out / f"{CHECKPOINT_PREFIX}{start_step}",
                 start_step, s.steps)
    csv_path = out / "losses.csv"
    rows = read_rows(csv_path, start_step)
    fields = None
    started, cpu_started = time.perf_counter(), time.process_time()
    model.train()
    bar = tqdm(total=s.steps, initial=start_step, desc=desc, unit="step", disable=not s.progress or not acc.is_main_process,
               mininterval=2.0)
    for step in range(start_step + 1, s.steps + 1):
        gen = step_generator(s.seed, step, acc.process_index)
        with acc.autocast():
            loss, parts = step_fn(model, gen, step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {float(loss)} at step {step}")
        acc.backward(loss)
        if s.max_grad_norm is not None and acc.sync_gradients:
            acc.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], s.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        row = {"step": step, "loss": float(loss.detach()), **parts, "lr": scheduler.get_last_lr()[0]}
        rows.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        if acc.is_main_process and (step % s.checkpoint_every == 0 or step == s.steps):
            fields = fields or list(row)
            _write_rows(csv_path, rows, fields)
            _save_checkpoint(out, step, raw_model, optimizer, scheduler, s.checkpoints_total_limit, run_id)
    bar.close()
    acc.wait_for_everyone()
    if acc.is_main_process:
        if rows:
            _write_rows(csv_path, rows, fields or list(rows[-1]))
        if csv_path.exists():  # also after a resume from the last checkpoint (no new rows): the report shows it
            plot_losses(csv_path, out / "loss.png", desc)
    last = rows[-10:]
    return {
        "steps": s.steps,
        "processes": acc.num_processes,  # data-parallel processes (sonic train --processes)
        "resumed_from": start_step,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
        "final_loss": sum(float(r["loss"]) for r in last) / len(last) if last else None,
        "loop": asdict(s),
    }


def _resume(out: Path, model, optimizer, scheduler, run_id: str, desc: str, is_main: bool) -> int:
    """Load the newest complete and readable checkpoint of this run into the model, optimizer and scheduler and
    return its step (0: none). Checkpoints of another run are removed, with ``losses.csv``. A checkpoint that cannot
    be read (a torn ``state.json``, weights or optimizer file) is skipped with a warning naming it and the problem,
    and moved aside to ``checkpoint-<step>.broken`` (kept for inspection, out of the way of resume and retention);
    the one before it is tried. Only the main process removes or moves anything."""

    def set_aside(path: Path, problem: str) -> None:
        log.warning("%s: skipping %s, it cannot be read (%s); moving it to %s.broken", desc, path, problem, path.name)
        if is_main:
            broken = path.with_name(f"{path.name}.broken")
            shutil.rmtree(broken, ignore_errors=True)
            path.replace(broken)

    found = []
    for _, path in checkpoints(out):
        try:
            found.append((path, _read_state(path).get("fingerprint", "")))
        except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
            set_aside(path, f"{STATE_FILE}: {e}")
    stale = [path for path, fp in found if fp != run_id]
    if stale:
        log.warning("%s: %d checkpoint(s) in %s belong to another run (settings or inputs changed); starting over",
                    desc, len(stale), out)
        if is_main:
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)
            (out / "losses.csv").unlink(missing_ok=True)
    for path in reversed([path for path, fp in found if fp == run_id]):
        try:
            ckpt = _read_checkpoint(path)
        except Exception as e:  # a torn file: the safetensors, zip and unpickling readers raise many kinds
            set_aside(path, f"{type(e).__name__}: {e}")
            continue
        return _apply_checkpoint(ckpt, path, model, optimizer, scheduler)
    return 0


def _write_rows(path: Path, rows: list[dict], fields: list[str]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
