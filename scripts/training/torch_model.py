"""The PyTorch pretraining model: transformers ``BertForPreTraining`` set up as Model Garden's
``BertPretrainerV2``, its losses and metrics, and its FLOP count.

* **Config** (:func:`bert_config`): the Model Garden ``bert`` encoder fields as a ``BertConfig``,
  with the two facts the converter (:mod:`scripts.hf_model.convert`) also relies on: Model Garden's
  ``gelu`` is the tanh approximation (transformers ``gelu_new``) and every layer norm has
  epsilon 1e-12. ``attn_implementation`` is ``sdpa`` (``torch.nn.functional.scaled_dot_product_attention``)
  unless told ``eager``.
* **Initialisation** (:func:`init_weights`): as Model Garden (``TruncatedNormal(stddev=0.02)``,
  cut at two standard deviations) for every dense kernel and embedding table, zeros for biases,
  layer norms at (1, 0); the ``[PAD]`` embedding row is not zeroed (transformers' default
  ``_init_weights`` zeroes it and draws from an untruncated normal).
* **Heads** (:class:`Pretrainer`): the MLM head runs only at the masked positions (the hidden
  states are gathered at ``masked_lm_positions`` before the transform and the decoder, as Model
  Garden's ``MaskedLM`` layer does); with ``masked_only_head=False`` it runs on every position and
  the logits are gathered afterwards (what ``BertForPreTraining.forward`` does, for benchmarks).
  The NSP head pools ``[CLS]`` (dense + tanh: ``bert.pooler``), applies the classification
  head's dropout (Model Garden's ``ClassificationHead``: ``cls_heads[0].dropout_rate``, 0.1) and
  the logits layer (``cls.seq_relationship``). transformers' own forward has no dropout there.
* **Losses** as Model Garden's ``MaskedLMTask.build_losses``: MLM cross-entropy weighted by
  ``masked_lm_weights`` and divided by the sum of the weights, plus the mean NSP cross-entropy,
  both in float32. The denominators are those of the *global* batch (every micro-batch of the
  step on every rank), so gradient accumulation and DDP give the loss of one big batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HF_ACTIVATION = {"gelu": "gelu_new", "relu": "relu"}
LAYER_NORM_EPS = 1e-12
# Model Garden's AdamWeightDecay / LAMB exclusion patterns (re.search on the variable name); the
# torch names contain the same words (LayerNorm.weight, *.bias, cls.predictions.bias).
NO_DECAY = ("LayerNorm", "layer_norm", "bias")


def bert_config(encoder: dict, *, pad_token_id: int = 0, attn_implementation: str = "sdpa"):
    """A ``BertConfig`` for Model Garden ``bert`` encoder fields (``task.model.encoder.bert``)."""
    from transformers import BertConfig

    act = encoder["hidden_activation"]
    if act not in HF_ACTIVATION:
        raise ValueError(f"hidden_activation {act!r} (supported: {', '.join(HF_ACTIVATION)})")
    cfg = BertConfig(
        architectures=["BertForPreTraining"],
        vocab_size=encoder["vocab_size"],
        hidden_size=encoder["hidden_size"],
        num_hidden_layers=encoder["num_layers"],
        num_attention_heads=encoder["num_attention_heads"],
        intermediate_size=encoder["intermediate_size"],
        hidden_act=HF_ACTIVATION[act],
        hidden_dropout_prob=encoder["dropout_rate"],
        attention_probs_dropout_prob=encoder["attention_dropout_rate"],
        max_position_embeddings=encoder["max_position_embeddings"],
        type_vocab_size=encoder["type_vocab_size"],
        initializer_range=encoder["initializer_range"],
        layer_norm_eps=LAYER_NORM_EPS,
        pad_token_id=pad_token_id,
        tie_word_embeddings=True,
        tokenizer_class="BertJapaneseTokenizer",
    )
    cfg._attn_implementation = attn_implementation
    return cfg


def _trunc_normal_(t: torch.Tensor, std: float, gen: torch.Generator) -> None:
    # The inverse-CDF method of torch.nn.init.trunc_normal_, with an explicit generator.
    lo, hi = -2.0, 2.0
    cdf = lambda x: (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0  # noqa: E731
    u = torch.rand(t.shape, generator=gen, dtype=torch.float64) * (cdf(hi) - cdf(lo)) + cdf(lo)
    x = torch.erfinv(2 * u - 1) * math.sqrt(2.0)
    t.copy_((x.clamp_(lo, hi) * std).to(t.dtype))


@torch.no_grad()
def init_weights(model: nn.Module, std: float, seed: int) -> None:
    """Model Garden's initialisation (see the module docstring), seeded."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            _trunc_normal_(module.weight, std, gen)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            _trunc_normal_(module.weight, std, gen)
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
    head = getattr(getattr(model, "cls", None), "predictions", None)
    if head is not None:
        head.bias.zero_()


@torch.no_grad()
def reinit_nsp_logits(model: nn.Module, std: float, seed: int) -> None:
    """A fresh next-sentence logits layer (Model Garden's stage-2 init restores everything else)."""
    gen = torch.Generator().manual_seed(seed)
    layer = model.cls.seq_relationship
    _trunc_normal_(layer.weight, std, gen)
    layer.bias.zero_()


def build_model(encoder: dict, *, seed: int, attn_implementation: str = "sdpa", pad_token_id: int = 0):
    from transformers import BertForPreTraining

    cfg = bert_config(encoder, pad_token_id=pad_token_id, attn_implementation=attn_implementation)
    model = BertForPreTraining(cfg)
    init_weights(model, encoder["initializer_range"], seed)
    model.tie_weights()
    return model


class Pretrainer(nn.Module):
    """``BertForPreTraining`` with Model Garden's heads and losses (see the module docstring).

    ``forward(batch, mlm_den, nsp_den)`` returns ``(loss, stats)``: the loss of this micro-batch
    as its share of the global-batch loss, and float32 sums for metrics (``mlm_loss``,
    ``nsp_loss``: numerators; ``mlm_correct``, ``mlm_weight``, ``nsp_correct``, ``sequences``).
    """

    def __init__(self, model: nn.Module, *, cls_dropout: float = 0.1, masked_only_head: bool = True):
        super().__init__()
        self.model = model
        self.cls_dropout = nn.Dropout(cls_dropout)
        self.masked_only_head = masked_only_head

    def forward(self, batch: dict, mlm_den: torch.Tensor, nsp_den: torch.Tensor):
        m = self.model
        out = m.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"])
        seq = out.last_hidden_state
        pos = batch["masked_lm_positions"]
        if self.masked_only_head:
            idx = pos.unsqueeze(-1).expand(-1, -1, seq.shape[-1])
            logits = m.cls.predictions(torch.gather(seq, 1, idx))
        else:
            full = m.cls.predictions(seq)
            logits = torch.gather(full, 1, pos.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
        logits = logits.float()
        ids = batch["masked_lm_ids"]
        w = batch["masked_lm_weights"].float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1), reduction="none")
        mlm_num = (ce.view_as(w) * w).sum()
        nsp_logits = m.cls.seq_relationship(self.cls_dropout(out.pooler_output)).float()
        labels = batch["next_sentence_labels"]
        nsp_ce = F.cross_entropy(nsp_logits, labels, reduction="sum")
        loss = mlm_num / mlm_den.clamp_min(1e-12) + nsp_ce / nsp_den
        with torch.no_grad():
            stats = torch.stack([
                mlm_num.detach(), nsp_ce.detach(),
                ((logits.argmax(-1) == ids).float() * w).sum(), w.sum(),
                (nsp_logits.argmax(-1) == labels).float().sum(),
                torch.tensor(float(labels.shape[0]), device=labels.device),
            ])
        return loss, stats


STAT_NAMES = ("mlm_loss", "nsp_loss", "mlm_correct", "mlm_weight", "nsp_correct", "sequences")


def metrics_from_stats(stats: torch.Tensor) -> dict[str, float]:
    """Global-batch metrics from summed :class:`Pretrainer` stats."""
    s = dict(zip(STAT_NAMES, stats.double().tolist()))
    mlm = s["mlm_loss"] / s["mlm_weight"] if s["mlm_weight"] else 0.0
    nsp = s["nsp_loss"] / s["sequences"] if s["sequences"] else 0.0
    return {"loss": mlm + nsp, "mlm_loss": mlm, "nsp_loss": nsp,
            "mlm_accuracy": s["mlm_correct"] / s["mlm_weight"] if s["mlm_weight"] else 0.0,
            "nsp_accuracy": s["nsp_correct"] / s["sequences"] if s["sequences"] else 0.0}


# ---------------------------------------------------------------------------------------------
# FLOPs and peak throughput (MFU)
# ---------------------------------------------------------------------------------------------

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; matched in
# order against torch.cuda.get_device_name() (first match wins).
PEAK_BF16_TFLOPS = (
    ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("B100", 1750.0), ("A100", 312.0), ("A800", 312.0), ("A30", 165.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A6000", 155.0), ("A10G", 70.0), ("A10", 125.0),
    ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0), ("T4", 65.0),
)


def peak_tflops(device_name: str) -> float | None:
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in device_name:
            return tflops
    return None


def flops_per_sequence(encoder: dict, seq_length: int, predictions: int, *, masked_only_head: bool = True,
                       training: bool = True) -> float:
    """Matmul FLOPs of one sequence (2 per multiply-add; backward = 2x forward).

    Counts the encoder (Q/K/V/output projections, attention scores and values, the FFN), the MLM
    transform and decoder at ``predictions`` positions (every position when not
    ``masked_only_head``), the pooler and the NSP logits. Embedding look-ups, layer norms,
    softmax and GELU are not counted (the usual convention for model FLOPs).
    """
    H, I, V = encoder["hidden_size"], encoder["intermediate_size"], encoder["vocab_size"]
    L, n = seq_length, encoder["num_layers"]
    per_layer = 2 * L * (4 * H * H + 2 * H * I) + 2 * 2 * L * L * H
    head_positions = predictions if masked_only_head else L
    heads = 2 * head_positions * (H * H + H * V) + 2 * (H * H + 2 * H)
    fwd = n * per_layer + heads
    return float(fwd * (3 if training else 1))
