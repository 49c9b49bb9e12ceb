"""Model families of the PyTorch backend besides BERT pretraining: what the engine
(:mod:`scripts.training.torch_train`, its one training loop) asks a family for.

A stage YAML with a ``family:`` section (written by :mod:`scripts.training.config` from the
model's architecture) trains through a :class:`Family`; without one the engine trains
``BertForPreTraining`` on TFRecords as before. A family provides the model (built, or initialised
from a checkpoint or a teacher), the module whose ``forward(batch, den0, den1)`` returns
``(loss, stats)`` (the engine's contract: the loss already divided by the global batch's
denominators, which :meth:`Family.denominators` says how to count), the rank's data
(:mod:`scripts.training.mlm_data`: token shards masked on the fly), validation batches, the
metrics from summed stats, and facts stored in every checkpoint (``ckpt["family"]``, which the
converter reads).

* ``roberta`` (:class:`RobertaFamily`): ``RobertaForMaskedLM``, MLM only. RoBERTa's conventions:
  ``[PAD]`` is ``padding_idx`` (id 1 in the plain SentencePiece layout), positions are numbered
  from ``padding_idx + 1`` by the model itself (no ``position_ids`` are passed, in training as at
  inference), ``max_position_embeddings`` = sequence length + 2, one token type. Initialised as
  the BERT backend (truncated normal 0.02, :func:`scripts.training.torch_model.init_weights`), the
  padding rows of the embeddings zero; layer-norm epsilon 1e-5 (RoBERTa's); the MLM head runs at
  the masked positions only; loss: masked-token cross-entropy over the global batch.
* ``distilbert``: :mod:`scripts.training.distill`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from scripts.shared.common import InputError
from scripts.training import torch_model as tm
from scripts.training.mlm_data import MaskSpec, MlmRankData, ShardSet, eval_batches, warm_up

FAMILIES = ("roberta", "distilbert")
ROBERTA_LAYER_NORM_EPS = 1e-5


def read_family(config: str) -> dict | None:
    """The ``family`` section of a stage YAML (``None``: BERT pretraining)."""
    with open(config, encoding="utf-8") as fh:
        o = yaml.safe_load(fh) or {}
    fam = o.get("family")
    if fam is not None and fam.get("name") not in FAMILIES:
        raise InputError(config, f"unknown model family {fam.get('name')!r} ({', '.join(FAMILIES)})")
    return fam


def load_family(config: str, train_files: list[str]):
    """The :class:`Family` of a stage YAML, for its training files (``None`` without a family)."""
    fam = read_family(config)
    if fam is None:
        return None
    if fam["name"] == "roberta":
        return RobertaFamily(fam, train_files)
    from scripts.training.distill import DistilFamily

    return DistilFamily(fam, train_files)


def model_class(family: str):
    from transformers import DistilBertForMaskedLM, RobertaForMaskedLM

    return {"roberta": RobertaForMaskedLM, "distilbert": DistilBertForMaskedLM}[family]


def model_config_from_dict(d: dict):
    """A stored model config (``ckpt["bert_config"]``) as its transformers config class."""
    from transformers import AutoConfig

    d = dict(d)
    return AutoConfig.for_model(d.pop("model_type"), **d)


class Family:
    """The engine's view of a model family (module docstring)."""

    name = ""
    n_stats = len(tm.STAT_NAMES)

    def __init__(self, section: dict, train_files: list[str]):
        self.section = dict(section)
        m = section.get("mask") or {}
        self.shards = ShardSet(train_files)
        self.meta = self.shards.meta
        self.spec = MaskSpec(masked_lm_prob=float(m.get("masked_lm_prob", 0.15)),
                             max_predictions=int(m.get("max_predictions", 20)),
                             whole_word=bool(m.get("whole_word", True)), replace=str(m.get("replace", "bert")))
        self.spec.check()
        self.special = self.meta["special_ids"]

    # -- data -------------------------------------------------------------------------------
    def check_data(self, stage) -> None:
        if self.shards.seq_length != stage.seq_length:
            raise InputError(self.shards.files[0], f"token shards of {self.shards.seq_length} tokens, the stage trains "
                                                   f"{stage.seq_length}")
        if self.spec.max_predictions != stage.max_predictions:
            raise InputError("family.mask.max_predictions", f"{self.spec.max_predictions} != the stage's "
                                                            f"max_predictions_per_seq {stage.max_predictions}")
        if int(self.meta["vocab_size"]) != int(stage.encoder["vocab_size"]):
            raise InputError(self.shards.files[0], f"token shards of a {self.meta['vocab_size']}-entry vocabulary, the "
                                                   f"model has {stage.encoder['vocab_size']}")
        warm_up()

    def rank_data(self, files, *, rank, world, workers, micro_batch, seed, states, rotation):
        return MlmRankData(files, self.spec, rank=rank, world=world, workers=workers, micro_batch=micro_batch,
                           seed=seed, states=states, rotation=rotation)

    def eval_batches(self, files, *, rank, world, micro_batch, seed):
        return eval_batches(files, self.spec, rank=rank, world=world, micro_batch=micro_batch, seed=seed)

    # -- losses and metrics -------------------------------------------------------------------
    def denominators(self, mbs: list[dict], device) -> torch.Tensor:
        """The global batch's loss denominators (summed over ranks by the engine)."""
        return torch.stack([sum(m["masked_lm_weights"].sum() for m in mbs).double(),
                            torch.tensor(float(sum(m["input_ids"].shape[0] for m in mbs)), dtype=torch.float64,
                                         device=device)])

    def metrics(self, stats: torch.Tensor) -> dict:
        return tm.metrics_from_stats(stats)

    def facts(self) -> dict:
        return {"name": self.name, **self.section}

    # -- model --------------------------------------------------------------------------------
    def init_state(self, path: str) -> dict:
        """The model weights a stage starts from: a previous stage's checkpoint."""
        from scripts.training.torch_checkpoint import load_checkpoint

        ck = load_checkpoint(path)
        if (ck.get("family") or {}).get("name") != self.name:
            raise InputError(path, f"init checkpoint is not a {self.name} checkpoint")
        return ck["model"]

    def default_init(self):
        """Where a first stage starts when no previous stage is given (a student: its teacher)."""
        return None

    def extra_run_data(self) -> list[dict]:
        """Digests of what else the run learns from (a teacher), for the run key."""
        return []


# ---------------------------------------------------------------------------------------------
# RoBERTa
# ---------------------------------------------------------------------------------------------


def roberta_config(encoder: dict, special: dict, *, attn_implementation: str = "sdpa"):
    from transformers import RobertaConfig

    act = encoder["hidden_activation"]
    if act not in tm.HF_ACTIVATION:
        raise ValueError(f"hidden_activation {act!r} (supported: {', '.join(tm.HF_ACTIVATION)})")
    cfg = RobertaConfig(
        architectures=["RobertaForMaskedLM"], vocab_size=encoder["vocab_size"], hidden_size=encoder["hidden_size"],
        num_hidden_layers=encoder["num_layers"], num_attention_heads=encoder["num_attention_heads"],
        intermediate_size=encoder["intermediate_size"], hidden_act=tm.HF_ACTIVATION[act],
        hidden_dropout_prob=encoder["dropout_rate"], attention_probs_dropout_prob=encoder["attention_dropout_rate"],
        max_position_embeddings=encoder["max_position_embeddings"], type_vocab_size=1,
        initializer_range=encoder["initializer_range"], layer_norm_eps=ROBERTA_LAYER_NORM_EPS,
        pad_token_id=int(special["pad"]), bos_token_id=int(special["cls"]), eos_token_id=int(special["sep"]),
        tie_word_embeddings=True)
    cfg._attn_implementation = attn_implementation
    return cfg


class MaskedLMPretrainer(nn.Module):
    """MLM only: the encoder, the LM head at the masked positions, weighted cross-entropy.

    ``forward(batch, mlm_den, seq_den)`` returns the engine's ``(loss, stats)`` with the stats of
    :data:`scripts.training.torch_model.STAT_NAMES` (the next-sentence entries are zero)."""

    def __init__(self, model: nn.Module, encoder_attr: str, head):
        super().__init__()
        self.model = model
        self.encoder_attr = encoder_attr
        self.head = head

    def hidden(self, batch):
        enc = getattr(self.model, self.encoder_attr)
        return enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state

    def forward(self, batch: dict, mlm_den: torch.Tensor, seq_den: torch.Tensor):
        seq = self.hidden(batch)
        pos = batch["masked_lm_positions"]
        logits = self.head(torch.gather(seq, 1, pos.unsqueeze(-1).expand(-1, -1, seq.shape[-1]))).float()
        ids = batch["masked_lm_ids"]
        w = batch["masked_lm_weights"].float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1), reduction="none")
        num = (ce.view_as(w) * w).sum()
        loss = num / mlm_den.clamp_min(1e-12)
        with torch.no_grad():
            zero = torch.zeros((), device=num.device)
            stats = torch.stack([num.detach(), zero, ((logits.argmax(-1) == ids).float() * w).sum(), w.sum(), zero,
                                 torch.tensor(float(ids.shape[0]), device=num.device)])
        return loss, stats


class RobertaFamily(Family):
    name = "roberta"

    def check_data(self, stage) -> None:
        super().check_data(stage)
        pad = int(self.special["pad"])
        need = stage.seq_length + pad + 1
        if stage.encoder["max_position_embeddings"] < need:
            raise InputError("architecture.max_position_embeddings",
                             f"{stage.encoder['max_position_embeddings']} < sequence length {stage.seq_length} + "
                             f"padding_idx {pad} + 1 (RoBERTa numbers positions from padding_idx + 1)")

    def build_model(self, stage, *, seed: int, attention: str = "sdpa", init_state: dict | None = None):
        from transformers import RobertaForMaskedLM

        model = RobertaForMaskedLM(roberta_config(stage.encoder, self.special, attn_implementation=attention))
        tm.init_weights(model, stage.encoder["initializer_range"], seed)
        with torch.no_grad():
            emb = model.roberta.embeddings
            emb.word_embeddings.weight[emb.padding_idx].zero_()
            emb.position_embeddings.weight[emb.padding_idx].zero_()
        model.tie_weights()
        if init_state is not None:
            model.load_state_dict(init_state, strict=True)
            model.tie_weights()
        return model

    def pretrainer(self, model, stage, options, device):
        return MaskedLMPretrainer(model, "roberta", model.lm_head)

