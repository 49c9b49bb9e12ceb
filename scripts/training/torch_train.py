"""Pretrain one stage with PyTorch (transformers ``BertForPreTraining``): the ``torch`` backend.

::

    python -m scripts.training.torch_train --config model/<tok>/<arch>/training-torch/<stage>.yaml \\
        --train-file F [F ...] [--train-stats S ...] --stage-dir <model_root>/<tok>/<arch>/training-torch/<stage> \\
        [--init-done <previous stage>/done.json | --init-checkpoint DIR_OR_CKPT] [--code DIGEST] \\
        [--options JSON] [--num-gpus N] [--threads N] --done <done.json>
    torchrun --standalone --nproc-per-node 8 -m scripts.training.torch_train ... --num-gpus 8   # DDP

Same inputs and outputs as :mod:`scripts.training.model_garden`: the stage's Model Garden
override YAML (``scripts.training.config``; read here as plain YAML: encoder, data shapes, batch,
steps, schedule, checkpoint cadence, plus its ``torch`` section: :mod:`scripts.training.torch_config`),
the per-shard gzip TFRecords, the run directory ``<stage-dir>/run-<key16>/`` bound to what
shaped the run (:mod:`scripts.training.runs`, backend ``torch``) that a rerun resumes from, and
``done.json`` (:func:`scripts.training.runs.done_info` + ``"backend": "torch"``) written last by
rank 0.

Decisions:

* **Model, losses, init**: :mod:`scripts.training.torch_model` (Model Garden's pretrainer in
  transformers' modules). A stage YAML with a ``family:`` section (RoBERTa, DistilBERT) trains
  through this same loop with the family's model, loss module and token-shard data
  (:mod:`scripts.training.mlm`, :mod:`scripts.training.distill`; ``Trainer.family``). **Optimiser and schedule**: :mod:`scripts.training.torch_optim`.
  **Data**: :mod:`scripts.training.torch_data` (no TensorFlow).
* **Global batch** = ``micro_batch_size x accumulation x world size``; ``micro_batch_size`` 0
  means ``global_batch_size / world`` (no accumulation). Gradients are synchronised once per step
  (``no_sync`` on the other micro-batches); the losses are normalised by the global batch's
  masked-token weight and sequence count (one all-reduce of two numbers per step).
* **Stage 2** (``--init-done``: the checkpoint the previous stage's done.json names):
  the model weights of stage 1's last checkpoint, a fresh optimiser and schedule, step 0, and a
  re-initialised next-sentence logits layer, as Model Garden's ``MaskedLMTask.initialize``
  (it restores the encoder, the MLM head and the NSP head's ``pooler_dense``, not its output
  layer).
* **Checkpoints** ``ckpt-<step>.pt`` every ``checkpoint_interval`` steps and at the end (and on
  SIGTERM/SIGUSR1, e.g. a SLURM preemption, before exiting 143): model, optimiser, scheduler,
  every rank's RNG states, every consumer's data position, the BertConfig. Written by rank 0 to
  a hidden temporary file, fsynced, renamed, the directory fsynced; the newest ``max_to_keep``
  are kept. A rerun resumes from the newest (``resuming from <ckpt> at step N``); with the same
  world size, workers and micro-batch it continues the exact data stream and RNG streams, so on
  CPU an interrupted run ends with the same weights as an uninterrupted one.
* **Speed switches** (``--options``, from ``training.torch`` in config.yaml; ``auto`` = on for
  CUDA, off on CPU): ``precision`` (``bf16`` autocast; weights, optimiser and losses stay
  float32), ``attention`` (``sdpa``|``eager``), ``compile`` (``torch.compile`` of the forward),
  ``fused_optimizer`` (fused AdamW kernel), ``optimizer`` (``adamw``|``lamb``),
  ``masked_only_head``, ``trim_padding`` (each micro-batch is cut to its longest sequence, rounded
  up to ``pad_multiple``: padding costs nothing and, unlike packing, nothing about the examples
  changes; see docs/benchmarks.md for why packing is not worth it here), ``num_workers``,
  ``shuffle_records``, ``deterministic`` (``torch.use_deterministic_algorithms``).
* **What users watch**: TensorBoard event files in ``<model-dir>/train`` and ``<model-dir>/validation``
  with Model Garden's tags (``training_loss``/``validation_loss``, ``lm_example_loss``,
  ``masked_lm_accuracy``, ``next_sentence_loss``, ``next_sentence_accuracy``, ``learning_rate``)
  plus ``grad_norm``, ``sequences_per_s``, ``tokens_per_s`` and ``mfu`` (GPU);
  a progress line every ``steps_per_loop`` steps (step, loss, accuracy, lr, throughput, MFU,
  ETA); the final line ``built <model-dir>: step N, checkpoint <path>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass

from scripts.shared.common import LOG, InputError, run_cli
from scripts.shared.formats import write_done
from scripts.training import runs
from scripts.training.torch_checkpoint import (CKPT_FORMAT, CKPT_RE, latest_checkpoint, load_checkpoint,  # noqa: F401
                                               prune, resolve_checkpoint, save_atomic)
from scripts.training.torch_config import Options, Resolved, Stage, read_stage, resolve, stage_options  # noqa: F401


# ---------------------------------------------------------------------------------------------
# Distributed set-up
# ---------------------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def chief(self) -> bool:
        return self.rank == 0


def setup_distributed(want_gpus: int) -> Dist:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if want_gpus > 0:
        if not torch.cuda.is_available():
            raise DeviceError(f"training.num_gpus is {want_gpus} but torch sees no CUDA device "
                              f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); install a "
                              "CUDA build of torch (README) or set training.num_gpus: 0")
        if torch.cuda.device_count() <= local:
            raise DeviceError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        device = "cpu"
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank=rank, world=world, local_rank=local, device=device)


class DeviceError(RuntimeError):
    """The configured accelerators are not visible."""


def _all_gather(obj, d: Dist) -> list:
    if d.world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _all_reduce(t, d: Dist):
    if d.world > 1:
        import torch.distributed as dist

        dist.all_reduce(t)
    return t


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _fmt_s(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


class _Stop:
    """SIGTERM/SIGUSR1: finish the current step, checkpoint, exit 143."""

    def __init__(self):
        self.signal = None
        for s in (signal.SIGTERM, signal.SIGUSR1):
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(s, self._set)

    def _set(self, signum, frame):
        self.signal = signum


# TensorBoard tags: Model Garden's names (train/ and validation/), so that the two backends' runs
# overlay in TensorBoard and the report reads either; the rest under their own names.
TB_TAGS = {"loss": "training_loss", "mlm_loss": "lm_example_loss", "mlm_accuracy": "masked_lm_accuracy",
           "nsp_loss": "next_sentence_loss", "nsp_accuracy": "next_sentence_accuracy"}

INT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "masked_lm_positions", "masked_lm_ids",
            "next_sentence_labels")


def to_device(b: dict, device: str, trim: bool, multiple: int) -> dict:
    import torch

    out = {k: b[k].to(device, non_blocking=True).long() for k in INT_KEYS}
    out["masked_lm_weights"] = b["masked_lm_weights"].to(device, non_blocking=True)
    if trim:
        L = out["input_ids"].shape[1]
        n = int(b["attention_mask"].sum(1).max())  # on the host tensor: no device sync
        n = min(L, max(1, -(-n // multiple) * multiple))
        if n < L:
            for k in ("input_ids", "attention_mask", "token_type_ids"):
                out[k] = out[k][:, :n]
    out["tokens"] = torch.as_tensor(b["attention_mask"].sum(), dtype=torch.float64)
    return out


class Trainer:
    def __init__(self, *, stage: Stage, files: list[str], model_dir: str, options: Options, dist: "Dist",
                 threads: int = 0, family=None):
        import torch

        from scripts.training import torch_model as tm

        self.stage, self.files, self.model_dir, self.o, self.d = stage, files, model_dir, options, dist
        # a model family other than BERT pretraining (scripts.training.mlm: RoBERTa, DistilBERT), or None
        self.family = family
        self.n_stats = family.n_stats if family is not None else len(tm.STAT_NAMES)
        self.metrics = family.metrics if family is not None else tm.metrics_from_stats
        self.cuda = dist.device.startswith("cuda")
        self.r = resolve(options, self.cuda)
        if threads > 0:  # the job's CPUs, shared by the ranks of this node (torchrun sets LOCAL_WORLD_SIZE)
            torch.set_num_threads(max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
        if options.deterministic:
            torch.use_deterministic_algorithms(True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        s = stage
        per_rank, rem = divmod(s.global_batch_size, dist.world)
        if rem:
            raise InputError("global_batch_size", f"{s.global_batch_size} is not divisible by world size {dist.world}")
        self.micro = options.micro_batch_size or per_rank
        if per_rank % self.micro:
            raise InputError("training.torch.micro_batch_size",
                             f"{self.micro} does not divide the per-rank batch {per_rank} "
                             f"(global {s.global_batch_size} / {dist.world} ranks)")
        self.accum = per_rank // self.micro

    # -- model and optimiser -----------------------------------------------------------------
    def build(self, init_state: dict | None = None, reinit_nsp_seed: int | None = None):
        import torch

        from scripts.training import torch_model as tm
        from scripts.training import torch_optim as to

        torch.manual_seed(self.o.seed + 1000003 * self.d.rank)  # dropout streams, one per rank
        if self.cuda:
            torch.cuda.manual_seed(self.o.seed + 1000003 * self.d.rank)
        if self.family is not None:
            model = self.family.build_model(self.stage, seed=self.o.seed, attention=self.o.attention,
                                            init_state=init_state)
            init_state = reinit_nsp_seed = None
        else:
            model = tm.build_model(self.stage.encoder, seed=self.o.seed, attn_implementation=self.o.attention)
        if init_state is not None:
            model.load_state_dict(init_state, strict=True)
        if reinit_nsp_seed is not None:
            tm.reinit_nsp_logits(model, self.stage.encoder["initializer_range"], reinit_nsp_seed)
        model.to(self.d.device)
        self.model = model
        self.pre = (self.family.pretrainer(model, self.stage, self.o, self.d.device) if self.family is not None else
                    tm.Pretrainer(model, cls_dropout=self.stage.cls_dropout, masked_only_head=self.o.masked_only_head))
        self.pre.train()
        net = self.pre
        if self.d.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(self.pre, device_ids=[self.d.local_rank] if self.cuda else None)
        self.net = net
        self.fwd = torch.compile(net) if self.r.compile else net
        self.opt = to.build_optimizer(model, self.o.optimizer, fused=self.r.fused)
        s = self.stage
        peak = s.learning_rate

        def lam(t: int) -> float:
            lr = to.learning_rate(t, learning_rate=s.learning_rate, end_learning_rate=s.end_learning_rate,
                                  warmup_steps=s.warmup_steps, decay_steps=s.decay_steps, power=s.power)
            return lr / peak if peak > 0 else 0.0

        for g in self.opt.param_groups:
            g["lr"] = peak
            g["initial_lr"] = peak
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lam)
        self._params = list(model.parameters())
        self.n_params = sum(p.numel() for p in self._params)

    # -- data -----------------------------------------------------------------------------------
    def data_layout(self) -> dict:
        return {"world": self.d.world, "workers": max(1, self.r.num_workers), "micro_batch": self.micro,
                "files": [os.path.basename(f) for f in self.files], "seed": self.o.seed,
                "shuffle_records": self.o.shuffle_records}

    def loader(self, data_state: dict | None, step: int):
        import torch.utils.data

        from scripts.training.torch_data import Layout, RankData

        layout = self.data_layout()
        seed, states, consumed = self.o.seed, {}, 0
        if data_state:
            if data_state.get("layout") == layout:
                states = {int(k): v for k, v in data_state["consumers"].items()}
                consumed = int(data_state["consumed"])
            else:
                seed = self.o.seed + 7919 * step
                LOG.warning("the data layout changed since the checkpoint (%s -> %s): the data stream "
                            "restarts with a new order (seed %d)", data_state.get("layout"), layout, seed)
        self.consumed = consumed
        self.states = dict(states)
        self.stream_seed = seed
        if self.family is not None:
            ds = self.family.rank_data(self.files, rank=self.d.rank, world=self.d.world, workers=self.r.num_workers,
                                       micro_batch=self.micro, seed=seed, states=states, rotation=consumed)
        else:
            ds = RankData(self.files, Layout(self.stage.seq_length, self.stage.max_predictions), rank=self.d.rank,
                          world=self.d.world, workers=self.r.num_workers, micro_batch=self.micro, seed=seed,
                          shuffle_records=self.o.shuffle_records, states=states, rotation=consumed,
                          verify=self.o.verify_crc)
        kw = {}
        if self.r.num_workers > 0:
            kw = {"num_workers": self.r.num_workers, "prefetch_factor": 4, "persistent_workers": False}
        # Its own generator: creating the loader's iterator draws a seed, which must not come from
        # (and shift) the global RNG that dropout uses, or a resumed run would diverge.
        gen = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(ds, batch_size=None, pin_memory=self.cuda, generator=gen, **kw)

    def data_state(self) -> dict:
        merged: dict = {}
        for part in _all_gather(self.states, self.d):
            merged.update(part)
        layout = self.data_layout()
        if self.stream_seed != self.o.seed:
            layout = {**layout, "seed": self.stream_seed}
        return {"layout": layout, "consumed": self.consumed,
                "consumers": {str(k): list(v) for k, v in sorted(merged.items())}}

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, step: int) -> str:
        import torch

        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if self.cuda else None}
        rngs = _all_gather(rng, self.d)
        data = self.data_state()
        path = os.path.join(self.model_dir, f"ckpt-{step}.pt")
        if self.d.chief:
            save_atomic({"format": CKPT_FORMAT, "step": step, "model": self.model.state_dict(),
                         "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                         "rng": rngs, "data": data, "bert_config": self.model.config.to_dict(),
                         "options": asdict(self.o),
                         **({"family": self.family.facts()} if self.family is not None else {})}, path)
            prune(self.model_dir, self.stage.max_to_keep)
        if self.d.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return path

    def restore(self, ck: dict) -> None:
        import torch

        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        rngs = ck.get("rng") or []
        if len(rngs) == self.d.world:
            torch.set_rng_state(rngs[self.d.rank]["torch"])
            if self.cuda and rngs[self.d.rank].get("cuda") is not None:
                torch.cuda.set_rng_state(rngs[self.d.rank]["cuda"])
        else:
            LOG.warning("checkpoint has RNG states of %d rank(s), this run has %d: dropout streams restart",
                        len(rngs), self.d.world)

    def step(self, mbs: list[dict], t: int):
        """One optimiser update (0-based index ``t``) over the micro-batches ``mbs`` (on the device).

        Returns ``(stats, real tokens, model FLOPs, learning rate used, gradient norm or None)``.
        """
        import torch

        from scripts.training import torch_model as tm
        from scripts.training import torch_optim as to

        d, dev, s = self.d, self.d.device, self.stage
        amp = torch.autocast("cuda" if self.cuda else "cpu", dtype=torch.bfloat16) if self.r.bf16 \
            else contextlib.nullcontext()
        if self.family is not None:
            den = self.family.denominators(mbs, dev)
        else:
            den = torch.stack([sum(m["masked_lm_weights"].sum() for m in mbs).double(),
                               torch.tensor(float(sum(m["input_ids"].shape[0] for m in mbs)), dtype=torch.float64,
                                            device=dev)])
        den = _all_reduce(den, d)
        mlm_den, nsp_den = den[0].float(), den[1].float()
        acc = torch.zeros(self.n_stats, dtype=torch.float64, device=dev)
        tokens = flops = 0.0
        for i, m in enumerate(mbs):
            sync = d.world == 1 or i == len(mbs) - 1
            with contextlib.nullcontext() if sync else self.net.no_sync():
                with amp:
                    loss, st = self.fwd(m, mlm_den, nsp_den)
                (loss * d.world).backward()
            acc += st.double()
            tokens += float(m["tokens"]) if "tokens" in m else 0.0
            flops += m["input_ids"].shape[0] * tm.flops_per_sequence(
                s.encoder, m["input_ids"].shape[1], s.max_predictions, masked_only_head=self.o.masked_only_head)
        gn = None
        if to.clips_gradients(self.opt):
            gn = torch.nn.utils.clip_grad_norm_(self._params, to.CLIP_NORM, foreach=True)
        lr = self.opt.param_groups[0]["lr"]
        to.set_step_eps(self.opt, t)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return acc, tokens, flops, lr, gn

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, start_step: int, data_state: dict | None, stop_after: int | None = None) -> dict:
        import torch

        from scripts.training import torch_model as tm
        from scripts.training import torch_optim as to

        s, d = self.stage, self.d
        stop = _Stop()
        writer = self._writer("train")
        loader = self.loader(data_state, start_step)
        it = iter(loader)
        dev = d.device
        name = torch.cuda.get_device_name(d.local_rank) if self.cuda else "cpu"
        peak = tm.peak_tflops(name) if self.cuda else None
        LOG.info("model: %s, %d parameters, attention %s, precision %s, compile %s, "
                 "optimizer %s%s, masked-only MLM head %s, trim padding %s", type(self.model).__name__,
                 self.n_params, self.o.attention,
                 "bf16 autocast" if self.r.bf16 else "fp32", self.r.compile, self.o.optimizer,
                 " (fused)" if self.r.fused and self.o.optimizer == "adamw" else "", self.o.masked_only_head,
                 self.o.trim_padding)
        LOG.info("training to step %d: global batch %d = %d micro-batch x %d accumulation x %d rank(s) "
                 "on %s; %d data worker(s) per rank", s.train_steps, s.global_batch_size, self.micro,
                 self.accum, d.world, name, self.r.num_workers)
        acc = torch.zeros(self.n_stats, dtype=torch.float64, device=dev)
        win_tokens = 0.0
        win_flops = 0.0
        t_win = t0 = time.monotonic()
        step = start_step
        win_steps = 0
        last_metrics: dict | None = None
        last_ckpt = None
        grad_norm = torch.zeros((), device=dev)
        clip = to.clips_gradients(self.opt)
        while step < s.train_steps:
            mbs = []
            for _ in range(self.accum):
                b = next(it)
                self.states[int(b["consumer"])] = (int(b["epoch"]), int(b["offset"]))
                self.consumed += 1
                mbs.append(to_device(b, dev, self.o.trim_padding, self.o.pad_multiple if self.cuda else 8))
            st, tokens, flops, lr, gn = self.step(mbs, step)
            acc += st
            win_tokens += tokens
            win_flops += flops
            if gn is not None:
                grad_norm = gn
            step += 1
            win_steps += 1
            at_summary = (step % s.summary_interval == 0 or step % s.steps_per_loop == 0 or step == s.train_steps
                          or step == start_step + 1)
            if at_summary:
                acc = _all_reduce(acc, d)
                now = time.monotonic()
                dt = max(now - t_win, 1e-9)
                last_metrics = self.metrics(acc)
                seqs = win_steps * s.global_batch_size / dt
                toks = win_tokens * d.world / dt
                mfu = (win_flops * d.world / dt) / (peak * 1e12 * d.world) if peak else None
                last_metrics.update({"learning_rate": lr, "grad_norm": float(grad_norm) if clip else None,
                                     "sequences_per_s": seqs, "tokens_per_s": toks, "mfu": mfu})
                if writer is not None and (step % s.summary_interval == 0 or step == s.train_steps):
                    for k, v in last_metrics.items():
                        if v is not None:
                            writer.add_scalar(TB_TAGS.get(k, k), v, step)
                    writer.flush()
                if step % s.steps_per_loop == 0 or step == s.train_steps or step == start_step + 1:
                    rate = (step - start_step) / max(now - t0, 1e-9)
                    eta = (s.train_steps - step) / rate if rate > 0 else float("nan")
                    LOG.info("step %d/%d (%.1f%%) | loss %.4f (mlm %.4f, nsp %.4f) | mlm acc %.3f, nsp acc %.3f | "
                             "lr %.3g | %.1f seq/s, %.0f tok/s | MFU %s | ETA %s", step, s.train_steps,
                             100.0 * step / s.train_steps, last_metrics["loss"], last_metrics["mlm_loss"],
                             last_metrics["nsp_loss"], last_metrics["mlm_accuracy"], last_metrics["nsp_accuracy"],
                             lr, seqs, toks, f"{100 * mfu:.1f}%" if mfu is not None else "n/a", _fmt_s(eta))
                acc.zero_()
                win_tokens = win_flops = 0.0
                win_steps = 0
                t_win = now
            if step % s.validation_interval == 0 and step < s.train_steps:
                self.evaluate(s.validation_steps, step)  # (the last step's is train()'s, after the loop)
            stopping = stop.signal is not None or (stop_after is not None and step - start_step >= stop_after)
            if step % s.checkpoint_interval == 0 or step == s.train_steps or stopping:
                last_ckpt = self.save(step)
                LOG.info("saved %s", last_ckpt)
            if stopping:
                break
        if writer is not None:
            writer.close()
        del it
        return {"step": step, "metrics": last_metrics, "checkpoint": last_ckpt, "signal": stop.signal,
                "seconds": time.monotonic() - t0}

    def evaluate(self, steps: int, step: int) -> dict | None:
        """``steps`` global batches in eval mode from the start of a separate seeded stream."""
        import torch

        from scripts.training import torch_model as tm
        from scripts.training.torch_data import ConsumerStream, Layout, to_batch

        if steps <= 0:
            return None
        s, d = self.stage, self.d
        if self.family is not None:
            batches = self.family.eval_batches(self.files, rank=d.rank, world=d.world, micro_batch=self.micro,
                                               seed=self.o.seed + 1)
        else:
            stream = ConsumerStream(self.files, Layout(s.seq_length, s.max_predictions), d.rank, d.world,
                                    seed=self.o.seed + 1, shuffle_records=1, verify=self.o.verify_crc)
            batches = (to_batch(ints, floats, stream.layout) for ints, floats, _ in stream.batches(self.micro))
        acc = torch.zeros(self.n_stats, dtype=torch.float64, device=d.device)
        self.pre.eval()
        amp = torch.autocast("cuda" if self.cuda else "cpu", dtype=torch.bfloat16) if self.r.bf16 \
            else contextlib.nullcontext()
        one = torch.ones((), device=d.device)
        with torch.no_grad():
            n = 0
            for b in batches:
                m = to_device(b, d.device, self.o.trim_padding, self.o.pad_multiple if self.cuda else 8)
                with amp:
                    _, st = self.pre(m, one, one)
                acc += st.double()
                n += 1
                if n >= steps * self.accum:
                    break
        self.pre.train()
        acc = _all_reduce(acc, d)
        m = self.metrics(acc)
        LOG.info("validation at step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in sorted(m.items())))
        w = self._writer("validation")
        if w is not None:
            for k, v in m.items():
                w.add_scalar({**TB_TAGS, "loss": "validation_loss"}.get(k, k), v, step)
            w.close()
        return m

    def _writer(self, sub: str):
        if not self.d.chief:
            return None
        try:
            _tensorboard_without_tf()
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # pragma: no cover - tensorboard comes with tensorflow in the lock
            LOG.warning("tensorboard is not installed: no event files")
            return None
        return SummaryWriter(os.path.join(self.model_dir, sub))


BACKEND = "torch"


def code_digest() -> str:
    """The digest of this backend's code, as the rule's ``params.code`` computes it."""
    from scripts.shared.registry import code_digest as digest

    return digest("training.torch_train")


def init_from_checkpoint(path: str) -> runs.InitCheckpoint:
    """An init checkpoint given by hand (a directory or a ckpt-N.pt): keyed by its file digest."""
    ckpt = resolve_checkpoint(path, "init checkpoint")
    return runs.InitCheckpoint(path=ckpt, part={"checkpoint": os.path.basename(ckpt),
                                                "sha256": runs.sha256_file(ckpt)})


def resolve_init(init_done: str | None = None, init_checkpoint: str | None = None) -> runs.InitCheckpoint | None:
    if init_done and init_checkpoint:
        raise InputError("--init-done/--init-checkpoint", "give one of them, not both")
    if init_done:
        init = runs.init_from_done(init_done)
        resolve_checkpoint(init.path, "init checkpoint")  # must exist
        return init
    return init_from_checkpoint(init_checkpoint) if init_checkpoint else None


def _tensorboard_without_tf() -> None:
    """Make tensorboard use its TensorFlow stub: its compat layer imports the real TensorFlow
    whenever installed (~5 s, and a second runtime in every rank) unless ``notf`` exists."""
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def train(*, config: str, train_files: list[str], stage_dir: str, done: str | None,
          init_done: str | None = None, init_checkpoint: str | None = None, train_stats: list[str] | None = None,
          code: str | None = None, options: dict | None = None, num_gpus: int = 0, threads: int = 0,
          stop_after: int | None = None) -> dict:
    """Train (or resume) one stage in its run directory; write ``done`` at the end (rank 0).

    ``options`` override the stage YAML's ``torch`` section (benchmarks, tests); the run key
    covers the YAML, so options given here must not change the weights a run produces (or the
    caller passes its own ``code``)."""
    import torch

    from scripts.training.mlm import load_family
    from scripts.training.torch_data import Layout, check_first_record

    t_start = time.monotonic()
    stage = read_stage(config)
    opts = stage_options(config, options)
    if not train_files:
        raise InputError("--train-file", "no training files given")
    for f in train_files:
        if not os.path.exists(f):
            raise InputError(f, "training file not found")
    init = resolve_init(init_done, init_checkpoint)
    d = setup_distributed(num_gpus)
    LOG.info("%d training file(s), e.g. %s; rank %d of %d on %s (torch %s)", len(train_files), train_files[0],
             d.rank, d.world, d.device, torch.__version__)
    family = load_family(config, train_files)  # None: BERT pretraining on TFRecords
    if family is not None:
        family.check_data(stage)
        init = init or family.default_init()  # a student starts from its teacher
    else:
        check_first_record(train_files[0], Layout(stage.seq_length, stage.max_predictions))
    tr = Trainer(stage=stage, files=train_files, model_dir="", options=opts, dist=d, threads=threads, family=family)

    extra = family.extra_run_data() if family is not None else []  # a teacher's weights
    parts = runs.run_parts(config=config, data=runs.data_digests(train_files, train_stats) + extra, init=init,
                           code=code or code_digest(), backend=BACKEND)
    if d.chief:
        run = runs.open_run(stage_dir, parts)
    _barrier(d)
    if not d.chief:  # rank 0 created the directory and its run.json: the others only check it
        run = runs.open_run(stage_dir, parts)
    model_dir = tr.model_dir = run.dir
    latest = latest_checkpoint(model_dir)
    ck = load_checkpoint(latest) if latest else None
    start_step = int(ck["step"]) if ck else 0
    how = runs.log_start(run, latest=latest, step=start_step, train_steps=stage.train_steps, init=init)
    result = {"metrics": None, "checkpoint": latest, "signal": None, "seconds": 0.0}
    validation = None
    if how != "done":
        if how == "resume":
            if init:
                LOG.info("(init checkpoint %s is not used: %s already has a checkpoint)", init.path, model_dir)
            tr.build(init_state=ck["model"])
            tr.restore(ck)
            data_state = ck.get("data")
        elif init and family is not None:
            tr.build(init_state=family.init_state(init.path))
            data_state = None
        elif init:
            tr.build(init_state=load_checkpoint(init.path)["model"], reinit_nsp_seed=opts.seed + 2)
            data_state = None
        else:
            tr.build()
            data_state = None
        del ck
        result = tr.run(start_step, data_state, stop_after=stop_after)
        if result["signal"] is not None:
            LOG.warning("stopped by signal %d at step %d: %s; rerun to resume", result["signal"], result["step"],
                        result["checkpoint"])
            raise SystemExit(143)
        if result["step"] < stage.train_steps:
            LOG.info("stopped after %d step(s) as asked, at step %d: %s", stop_after, result["step"],
                     result["checkpoint"])
            return {"stopped": True, "model_dir": model_dir, **result}
        validation = tr.evaluate(stage.validation_steps, result["step"])
    final = latest_checkpoint(model_dir)
    final_step = int(CKPT_RE.match(os.path.basename(final)).group(1)) if final else -1
    if final_step != stage.train_steps:
        raise RuntimeError(f"training ended with latest checkpoint {final} at step {final_step}, "
                           f"expected {stage.train_steps}")
    info = {
        **runs.done_info(run, checkpoint=final, final_step=final_step, init=init),
        "backend": BACKEND,
        **({"family": family.name} if family is not None else {}),
        "train_steps": stage.train_steps,
        "start_step": start_step,
        "trained_steps": final_step - start_step,
        "seconds": round(time.monotonic() - t_start, 3),
        "resumed_from": latest if how == "resume" else None,
        "global_batch_size": stage.global_batch_size,
        "micro_batch_size": tr.micro,
        "gradient_accumulation": tr.accum,
        "world_size": d.world,
        "train_files": len(train_files),
        "device": d.device if d.device == "cpu" else torch.cuda.get_device_name(d.local_rank),
        "options": asdict(opts),
        "resolved": asdict(tr.r),
        "versions": {"torch": torch.__version__},
        "train_metrics": result["metrics"],
        "validation_metrics": validation,
        "throughput": {"seconds": round(result["seconds"], 3)},
    }
    if d.chief and done:
        write_done(done, info)
    LOG.info("built %s: step %d, checkpoint %s", model_dir, final_step, final)
    if d.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return info


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="stage YAML (scripts.training.config), with its torch section")
    ap.add_argument("--train-file", action="extend", nargs="+", default=[], help="training file(s) (repeatable)")
    ap.add_argument("--train-stats", action="extend", nargs="*", default=[],
                    help="the training files' .stats.json (their recorded sha256 spares hashing the files)")
    ap.add_argument("--stage-dir", required=True,
                    help="the stage's directory: checkpoints go to <stage-dir>/run-<key16>/ (kept; resumed from)")
    ap.add_argument("--init-done", nargs="*", default=[],
                    help="the previous stage's done.json (its checkpoint initialises this stage); none: random")
    ap.add_argument("--init-checkpoint", help="instead of --init-done: a model dir or a ckpt-N.pt file")
    ap.add_argument("--code", help="code digest for the run key (default: this module's, as params.code)")
    ap.add_argument("--options", default="{}", help="JSON object overriding the YAML's torch options")
    ap.add_argument("--num-gpus", type=int, default=0, help="GPUs per node (0: CPU); one rank per GPU")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    ap.add_argument("--stop-after", type=int, help="checkpoint and stop after N steps of this run (tests)")
    ap.add_argument("--done", help="marker JSON written at the very end")
    a = ap.parse_args(argv)
    if len(a.init_done) > 1:
        ap.error("--init-done takes at most one done.json")
    try:
        overrides = json.loads(a.options)
    except json.JSONDecodeError as e:
        raise InputError("--options", f"invalid JSON: {e}") from None
    if not a.done and a.stop_after is None:
        ap.error("--done is required")
    try:
        train(config=a.config, train_files=sorted(dict.fromkeys(a.train_file)), stage_dir=a.stage_dir, done=a.done,
              init_done=a.init_done[0] if a.init_done else None, init_checkpoint=a.init_checkpoint,
              train_stats=a.train_stats, code=a.code, options=overrides, num_gpus=a.num_gpus, threads=a.threads,
              stop_after=a.stop_after)
    except DeviceError as e:
        LOG.error("%s", e)
        return 3
    return 0


if __name__ == "__main__":
    run_cli(main)
