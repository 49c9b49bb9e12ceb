"""Optimisers and the learning-rate schedule of the PyTorch backend, as Model Garden computes them.

* **Schedule** (:func:`learning_rate`): Model Garden's ``PolynomialWarmUp`` over
  ``PolynomialDecayWithOffset`` (``bert/pretraining`` with the stage's values). The update with
  0-based index ``t`` uses ``lr(t)``: for ``t < warmup_steps`` it is
  ``peak * max(t, 1) / warmup_steps`` where ``peak`` is the *decayed* rate at ``warmup_steps``
  (not ``learning_rate`` itself), afterwards ``(learning_rate - end) * (1 - min(t, decay_steps) /
  decay_steps) + end`` with ``decay_steps = train_steps`` (power 1).
* **AdamW** (``optimizer: adamw``): ``torch.optim.AdamW`` (``fused=True`` on CUDA when asked)
  with Model Garden's ``AdamWeightDecay`` values: betas (0.9, 0.999), weight decay 0.01 for
  every parameter whose name matches none of ``LayerNorm``, ``layer_norm``, ``bias``, gradients
  clipped to global norm 1.0 first. Model Garden's epsilon (1e-7) is added to the *uncorrected*
  ``sqrt(v)`` (Keras' legacy Adam), torch's to the bias-corrected one; :func:`set_step_eps` sets
  torch's ``eps`` to ``1e-7 / sqrt(1 - beta2^t)`` before each step, which is the same update.
  Decoupled weight decay ``p -= lr * 0.01 * p`` before the Adam step, in both.
* **LAMB** (``optimizer: lamb``, for large global batches): :class:`Lamb`, written here because
  the lock has no maintained PyTorch LAMB (``torch-optimizer`` is unmaintained, apex's
  ``FusedLAMB`` needs a CUDA build of apex). It follows Model Garden's
  ``official.modeling.optimization.lamb.LAMB``: Adam moments with bias correction, epsilon 1e-6,
  weight decay added to the update, per-tensor trust ratio ``||w|| / ||update||`` (1 where
  either norm is 0), and neither decay nor trust ratio for ``LayerNorm``/``bias`` parameters; no
  gradient clipping (Model Garden's LAMB has none). Vectorised over tensors with
  ``torch._foreach_*``.
"""

from __future__ import annotations

import math
import re

import torch

from scripts.training.torch_model import NO_DECAY

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-7  # Model Garden AdamWeightDecayConfig.epsilon (Keras legacy placement)
LAMB_EPS = 1e-6  # Model Garden LAMBConfig.epsilon
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0  # Model Garden AdamWeightDecayConfig.gradient_clip_norm


def learning_rate(t: int, *, learning_rate: float, end_learning_rate: float, warmup_steps: int,
                  decay_steps: int, power: float = 1.0) -> float:
    """The rate of update ``t`` (0-based), exactly as Model Garden (see the module docstring)."""

    def decayed(step: float) -> float:
        s = min(step, decay_steps)
        return (learning_rate - end_learning_rate) * (1.0 - s / decay_steps) ** power + end_learning_rate

    if warmup_steps > 0 and t < warmup_steps:
        return decayed(warmup_steps) * (max(t, 1) / warmup_steps) ** 1.0
    return decayed(t)


def decays(name: str) -> bool:
    return not any(re.search(p, name) for p in NO_DECAY)


def param_groups(model: torch.nn.Module, weight_decay: float = WEIGHT_DECAY) -> list[dict]:
    """Two groups: decayed and not (tied parameters appear once, under their first name)."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if decays(name) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "adapt": True},
            {"params": no_decay, "weight_decay": 0.0, "adapt": False}]


def build_optimizer(model: torch.nn.Module, kind: str = "adamw", *, fused: bool = False):
    groups = param_groups(model)
    if kind == "adamw":
        kw = {"fused": True} if fused else {"foreach": True}
        for g in groups:
            g.pop("adapt")
        return torch.optim.AdamW(groups, lr=0.0, betas=ADAM_BETAS, eps=ADAM_EPS, **kw)
    if kind == "lamb":
        return Lamb(groups, lr=0.0, betas=ADAM_BETAS, eps=LAMB_EPS)
    raise ValueError(f"unknown optimizer {kind!r} (adamw, lamb)")


def set_step_eps(optimizer, t: int) -> None:
    """For AdamW: torch's eps equivalent to Keras' legacy epsilon at update ``t`` (0-based)."""
    if isinstance(optimizer, torch.optim.AdamW):
        b2 = ADAM_BETAS[1]
        for g in optimizer.param_groups:
            g["eps"] = ADAM_EPS / math.sqrt(1.0 - b2 ** (t + 1))


def clips_gradients(optimizer) -> bool:
    return isinstance(optimizer, torch.optim.AdamW)


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019) as Model Garden implements it (module docstring)."""

    def __init__(self, params, lr: float = 1e-3, betas=ADAM_BETAS, eps: float = LAMB_EPS,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "adapt": True})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = g["betas"]
            grads = [p.grad for p in params]
            ms, vs = [], []
            for p in params:
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float64)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                ms.append(st["exp_avg"])
                vs.append(st["exp_avg_sq"])
            t = float(self.state[params[0]]["step"])
            torch._foreach_lerp_(ms, grads, 1 - b1)  # m = b1 m + (1 - b1) g
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            denom = torch._foreach_div(vs, c2)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, g["eps"])
            upd = torch._foreach_div(ms, c1)
            torch._foreach_div_(upd, denom)
            if g["weight_decay"]:
                torch._foreach_add_(upd, params, alpha=g["weight_decay"])
            if g["adapt"]:
                w_norm = torch._foreach_norm(params)
                u_norm = torch._foreach_norm(upd)
                ratio = [torch.where((w > 0) & (u > 0), w / u, torch.ones_like(w))
                         for w, u in zip(w_norm, u_norm)]
                torch._foreach_mul_(upd, ratio)
            torch._foreach_add_(params, upd, alpha=-g["lr"])
        return loss
