"""DistilBERT distilled from a BERT teacher built by this pipeline (the ``distilbert`` family).

* **Teacher**: a converted model directory of the hf_model stage (``build/hf_model/<teacher>/``,
  a Snakemake input of the training job: a retrained teacher makes the student stale; its
  ``model.safetensors`` digest is part of the run key, so a new teacher never resumes an old
  student run). Loaded as ``BertForMaskedLM``, frozen, in eval mode; bf16 on CUDA (fp32 on CPU).
  Before training, the teacher's tokenizer is checked to be the student's: the same tokenizer
  files (byte for byte: ``vocab.txt``, ``spiece.model`` / ``tokenizer.json``) and tokenizer kind,
  and the same ids on probe sentences (:func:`check_same_tokenizer`).
* **Student** (:func:`student_from_teacher`): ``DistilBertForMaskedLM`` with the teacher's
  hidden size, heads and intermediate size and ``len(teacher_layers)`` layers, initialised from
  the teacher: word embeddings, position embeddings *plus the teacher's token-type-0 embedding*
  (DistilBERT has no token types and every input is segment 0, so folding it into the positions
  keeps the embedding output exactly the teacher's), the embedding layer norm, the teacher layers
  ``teacher_layers`` (DistilBERT's choice for 12 -> 6: 0, 2, 4, 7, 9, 11) and the MLM head
  (transform, layer norm, output bias; the decoder is tied to the word embeddings). With every
  teacher layer copied, the student computes the teacher's MLM logits (tested).
* **Loss** (:func:`loss_terms`, :class:`DistilPretrainer`): ``alpha_ce x KL(softmax(t/T) ||
  softmax(s/T)) x T²`` averaged over the non-padding tokens (all of them, as DistilBERT's
  ``restrict_ce_to_mask: false``; only the masked ones with ``true``) + ``alpha_mlm x`` the
  masked-LM cross-entropy averaged over the masked tokens + ``alpha_cos x (1 - cos(student last
  hidden state, teacher's))`` averaged over the non-padding tokens. Defaults 5.0 / 2.0 / 1.0,
  ``T = 2.0``. Teacher and student see the same masked input. The averages are over the global
  batch (the engine's denominators: masked weight and non-padding tokens of every micro-batch on
  every rank), so accumulation and DDP give the loss of one big batch.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F
from torch import nn

from scripts.shared.common import LOG, InputError
from scripts.training import runs
from scripts.training.mlm import Family

DEFAULTS = {"temperature": 2.0, "alpha_ce": 5.0, "alpha_mlm": 2.0, "alpha_cos": 1.0,
            "teacher_layers": [0, 2, 4, 7, 9, 11], "restrict_ce_to_mask": False}
STAT_NAMES = ("ce_num", "mlm_num", "cos_num", "mlm_correct", "mlm_weight", "tokens", "sequences", "ce_tokens")
TOKENIZER_FILES = ("vocab.txt", "spiece.model", "tokenizer.json")
PROBES = ("東京は日本の首都です。", "吾輩は猫である。名前はまだ無い。", "ＡＢＣ１２３、ｶﾀｶﾅと[MASK]。")


def settings(section: dict) -> dict:
    d = {**DEFAULTS, **(section.get("distillation") or {})}
    if d["temperature"] <= 0:
        raise InputError("distillation.temperature", "must be positive")
    return d


# ---------------------------------------------------------------------------------------------
# Teacher and student
# ---------------------------------------------------------------------------------------------


def load_teacher(teacher_dir: str, attn_implementation: str = "sdpa"):
    """The teacher as a ``BertForMaskedLM`` (from a converted ``BertForPreTraining`` directory)."""
    from transformers import BertForMaskedLM

    if not os.path.isfile(os.path.join(teacher_dir, "config.json")):
        raise InputError(teacher_dir, "teacher model directory has no config.json")
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the NSP head and pooler are not used (expected)
    try:
        teacher = BertForMaskedLM.from_pretrained(teacher_dir, attn_implementation=attn_implementation)
    finally:
        transformers.logging.set_verbosity(level)
    if teacher.config.model_type != "bert":
        raise InputError(teacher_dir, f"teacher is a {teacher.config.model_type!r} model, not BERT")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def student_config(encoder: dict, teacher_cfg, *, n_layers: int, attn_implementation: str = "sdpa"):
    """DistilBERT of the teacher's width (the stage's architecture must agree with the teacher)."""
    from transformers import DistilBertConfig

    t = teacher_cfg
    want = {"hidden_size": t.hidden_size, "num_attention_heads": t.num_attention_heads,
            "intermediate_size": t.intermediate_size, "vocab_size": t.vocab_size, "num_layers": n_layers}
    bad = [f"{k} {encoder[k]} (teacher: {v})" for k, v in want.items() if encoder[k] != v]
    if bad:
        raise InputError("architecture", "the student's architecture does not fit its teacher: " + "; ".join(bad))
    if abs(t.layer_norm_eps - 1e-12) > 1e-15:
        raise InputError("teacher", f"layer_norm_eps {t.layer_norm_eps}: DistilBERT's layer norms use 1e-12")
    cfg = DistilBertConfig(
        architectures=["DistilBertForMaskedLM"], vocab_size=t.vocab_size, dim=t.hidden_size, n_layers=n_layers,
        n_heads=t.num_attention_heads, hidden_dim=t.intermediate_size, activation=t.hidden_act,
        dropout=encoder["dropout_rate"], attention_dropout=encoder["attention_dropout_rate"],
        max_position_embeddings=t.max_position_embeddings, initializer_range=encoder["initializer_range"],
        pad_token_id=t.pad_token_id, sinusoidal_pos_embds=False, tie_weights_=True, tie_word_embeddings=True)
    cfg._attn_implementation = attn_implementation
    return cfg


def layer_map(teacher_layers: list[int]) -> dict[str, str]:
    """Student state-dict key -> teacher key (the position embeddings are computed, not copied)."""
    m = {"distilbert.embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
         "distilbert.embeddings.LayerNorm.weight": "bert.embeddings.LayerNorm.weight",
         "distilbert.embeddings.LayerNorm.bias": "bert.embeddings.LayerNorm.bias",
         "vocab_transform.weight": "cls.predictions.transform.dense.weight",
         "vocab_transform.bias": "cls.predictions.transform.dense.bias",
         "vocab_layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
         "vocab_layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
         "vocab_projector.weight": "bert.embeddings.word_embeddings.weight",
         "vocab_projector.bias": "cls.predictions.bias"}
    parts = {"attention.q_lin": "attention.self.query", "attention.k_lin": "attention.self.key",
             "attention.v_lin": "attention.self.value", "attention.out_lin": "attention.output.dense",
             "sa_layer_norm": "attention.output.LayerNorm", "ffn.lin1": "intermediate.dense",
             "ffn.lin2": "output.dense", "output_layer_norm": "output.LayerNorm"}
    for i, t in enumerate(teacher_layers):
        for s_part, t_part in parts.items():
            for w in ("weight", "bias"):
                m[f"distilbert.transformer.layer.{i}.{s_part}.{w}"] = f"bert.encoder.layer.{t}.{t_part}.{w}"
    return m


@torch.no_grad()
def student_state_from_teacher(teacher_state: dict, teacher_layers: list[int], n_teacher_layers: int) -> dict:
    """The student's whole state dict from a teacher's (module docstring)."""
    bad = [i for i in teacher_layers if not 0 <= i < n_teacher_layers]
    if bad or len(set(teacher_layers)) != len(teacher_layers):
        raise InputError("distillation.teacher_layers", f"{teacher_layers}: layers must be distinct and in "
                                                        f"[0, {n_teacher_layers})")
    out = {s: teacher_state[t].detach().clone().float() for s, t in layer_map(teacher_layers).items()}
    out["distilbert.embeddings.position_embeddings.weight"] = (
        teacher_state["bert.embeddings.position_embeddings.weight"].float()
        + teacher_state["bert.embeddings.token_type_embeddings.weight"][0].float())
    return out


def student_from_teacher(teacher, encoder: dict, teacher_layers: list[int], *, attn_implementation: str = "sdpa"):
    """A ``DistilBertForMaskedLM`` initialised from ``teacher`` (a ``BertForMaskedLM``)."""
    from transformers import DistilBertForMaskedLM

    cfg = student_config(encoder, teacher.config, n_layers=len(teacher_layers), attn_implementation=attn_implementation)
    student = DistilBertForMaskedLM(cfg)
    state = student_state_from_teacher(teacher.state_dict(), teacher_layers, teacher.config.num_hidden_layers)
    missing, unexpected = student.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "vocab_projector.weight"]
    if missing or unexpected:
        raise RuntimeError(f"student init: missing {missing}, unexpected {unexpected}")
    student.tie_weights()
    return student


# ---------------------------------------------------------------------------------------------
# Tokenizer identity
# ---------------------------------------------------------------------------------------------


def _sha(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for b in iter(lambda: fh.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def check_same_tokenizer(teacher_dir: str, tokenizer_dir: str, kind: str, mecab_dic: str | None) -> None:
    """Fail unless the teacher tokenizes exactly as the student's data was tokenised."""
    import json

    for name in TOKENIZER_FILES:
        s = _sha(os.path.join(tokenizer_dir, name))
        t = _sha(os.path.join(teacher_dir, name))
        needed = (name == "vocab.txt" and kind != "sentencepiece") or (name == "spiece.model" and kind ==
                                                                          "mecab_sentencepiece") or \
                 (name == "tokenizer.json" and kind == "sentencepiece")
        if needed and s != t:
            raise InputError(teacher_dir, f"the teacher's {name} differs from the student's tokenizer "
                                          f"{os.path.join(tokenizer_dir, name)} (teacher and student must tokenize "
                                          "identically: distil from a teacher trained on the same tokenizer)")
    with open(os.path.join(teacher_dir, "tokenizer_config.json"), encoding="utf-8") as fh:
        tcfg = json.load(fh)
    t_kind = ("sentencepiece" if tcfg.get("tokenizer_class") in ("PreTrainedTokenizerFast", "TokenizersBackend")
              else ("mecab_sentencepiece" if tcfg.get("subword_tokenizer_type") == "sentencepiece"
                    else tcfg.get("subword_tokenizer_type")))
    if t_kind != kind:
        raise InputError(teacher_dir, f"the teacher's tokenizer is {t_kind}, the student's {kind}")
    if kind != "sentencepiece" and (tcfg.get("mecab_kwargs") or {}).get("mecab_dic") != mecab_dic:
        raise InputError(teacher_dir, f"the teacher's MeCab dictionary is {tcfg.get('mecab_kwargs')}, the "
                                      f"student's {mecab_dic}")
    from transformers import AutoTokenizer

    from scripts.tokenizers.sentencepiece import data_tokenizer

    teacher_tok = AutoTokenizer.from_pretrained(teacher_dir)
    subword = "sentencepiece" if kind in ("sentencepiece", "mecab_sentencepiece") else kind
    data = data_tokenizer(os.path.join(tokenizer_dir, "vocab.txt"), subword, mecab_dic,
                          os.path.join(tokenizer_dir, "spiece.model"), os.path.join(tokenizer_dir, "tokenizer.json"))
    ids, _, per_line = data.encode_lines(list(PROBES))
    off = 0
    for text, n in zip(PROBES, per_line):
        want = ids[off:off + n].tolist()
        off += n
        got = teacher_tok(text, add_special_tokens=False)["input_ids"]
        if got != want:
            raise InputError(teacher_dir, f"the teacher's tokenizer gives {got} for {text!r}, the student's data "
                                          f"tokenizer {want}")


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


def kl_sum(s_logits: torch.Tensor, t_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``sum over tokens of KL(softmax(t/T) || softmax(s/T))`` (float32)."""
    s = F.log_softmax(s_logits.float() / temperature, dim=-1)
    t = F.log_softmax(t_logits.float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum()


def cos_sum(s_hidden: torch.Tensor, t_hidden: torch.Tensor) -> torch.Tensor:
    """``sum over tokens of 1 - cos(s, t)`` (PyTorch's cosine embedding loss with target 1, summed)."""
    return (1.0 - F.cosine_similarity(s_hidden.float(), t_hidden.float(), dim=-1, eps=1e-8)).sum()


def loss_terms(s_logits, t_logits, s_hidden, t_hidden, token_mask, positions, labels, weights, *,
               temperature: float, restrict_ce_to_mask: bool = False) -> dict:
    """The summed terms of one micro-batch, from full ``(B, L, V)`` logits and ``(B, L, H)``
    hidden states (the reference form, for tests; :class:`DistilPretrainer` computes the same on
    the selected tokens only)."""
    sel = token_mask.bool()
    mlm_logits = torch.gather(s_logits, 1, positions.unsqueeze(-1).expand(-1, -1, s_logits.shape[-1]))
    w = weights.float()
    ce = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]).float(), labels.reshape(-1),
                         reduction="none").view_as(w)
    if restrict_ce_to_mask:
        t_m = torch.gather(t_logits, 1, positions.unsqueeze(-1).expand(-1, -1, t_logits.shape[-1]))
        keep = w > 0
        kl = kl_sum(mlm_logits[keep], t_m[keep], temperature)
        n_kl = keep.sum()
    else:
        kl = kl_sum(s_logits[sel], t_logits[sel], temperature)
        n_kl = sel.sum()
    return {"kl_sum": kl, "kl_tokens": n_kl, "mlm_sum": (ce * w).sum(), "mlm_weight": w.sum(),
            "cos_sum": cos_sum(s_hidden[sel], t_hidden[sel]), "tokens": sel.sum()}


def total_loss(terms: dict, *, temperature: float, alpha_ce: float, alpha_mlm: float, alpha_cos: float) -> torch.Tensor:
    """The loss of the terms' batch alone (their own denominators)."""
    return (alpha_ce * terms["kl_sum"] / terms["kl_tokens"] * temperature ** 2
            + alpha_mlm * terms["mlm_sum"] / terms["mlm_weight"] + alpha_cos * terms["cos_sum"] / terms["tokens"])


class DistilPretrainer(nn.Module):
    """Student + frozen teacher; ``forward(batch, mlm_den, token_den)`` -> the engine's
    ``(loss, stats)`` (stats: :data:`STAT_NAMES`)."""

    def __init__(self, student, teacher, d: dict, teacher_dtype=None):
        super().__init__()
        self.model = student
        self.teacher = teacher
        self.d = d
        self.teacher_dtype = teacher_dtype

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # always: no dropout in the targets
        return self

    def _student_head(self, h):
        m = self.model
        return m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(h))))

    def forward(self, batch: dict, mlm_den: torch.Tensor, token_den: torch.Tensor):
        d = self.d
        T = float(d["temperature"])
        ids, att = batch["input_ids"], batch["attention_mask"]
        s_hidden = self.model.distilbert(input_ids=ids, attention_mask=att).last_hidden_state
        with torch.no_grad():
            t_out = self.teacher.bert(input_ids=ids, attention_mask=att, token_type_ids=torch.zeros_like(ids))
            t_hidden = t_out.last_hidden_state
        B, L, H = s_hidden.shape
        sel = att.bool()
        pos = batch["masked_lm_positions"]
        w = batch["masked_lm_weights"].float()
        labels = batch["masked_lm_ids"]
        # the selected tokens, flattened; the masked slots' rows in that selection
        flat_index = (sel.reshape(-1).long().cumsum(0) - 1)
        rows = torch.arange(B, device=ids.device).unsqueeze(1) * L + pos
        slot = flat_index[rows]  # (B, P): index of each masked slot among the selected tokens
        s_sel = s_hidden[sel]
        t_sel = t_hidden[sel]
        s_logits = self._student_head(s_sel)
        mlm_logits = s_logits[slot].float()
        ce = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), labels.reshape(-1), reduction="none")
        mlm_num = (ce.view_as(w) * w).sum()
        with torch.no_grad():
            if d["restrict_ce_to_mask"]:
                keep = w > 0
                t_logits = self.teacher.cls(t_sel[slot[keep]])
            else:
                t_logits = self.teacher.cls(t_sel)
        if d["restrict_ce_to_mask"]:
            kl = kl_sum(mlm_logits[w > 0], t_logits, T)
            n_kl = (w > 0).sum()
        else:
            kl = kl_sum(s_logits, t_logits, T)
            n_kl = sel.sum()
        cs = cos_sum(s_sel, t_sel)
        kl_den = mlm_den if d["restrict_ce_to_mask"] else token_den
        loss = (d["alpha_ce"] * kl * T * T / kl_den.clamp_min(1e-12) + d["alpha_mlm"] * mlm_num / mlm_den.clamp_min(1e-12)
                + d["alpha_cos"] * cs / token_den.clamp_min(1e-12))
        with torch.no_grad():
            stats = torch.stack([(kl * T * T).detach(), mlm_num.detach(), cs.detach(),
                                 ((mlm_logits.argmax(-1) == labels).float() * w).sum(), w.sum(),
                                 sel.sum().float(), torch.tensor(float(B), device=ids.device), n_kl.float()])
        return loss, stats


# ---------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------


class DistilFamily(Family):
    name = "distilbert"
    n_stats = len(STAT_NAMES)

    def __init__(self, section: dict, train_files: list[str]):
        super().__init__(section, train_files)
        self.d = settings(section)
        t = section.get("teacher") or {}
        self.teacher_dir = t.get("dir")
        if not self.teacher_dir or not os.path.isdir(self.teacher_dir):
            raise InputError(str(self.teacher_dir), "teacher model directory not found")
        self.teacher_weights = os.path.join(self.teacher_dir, "model.safetensors")
        if not os.path.isfile(self.teacher_weights):
            raise InputError(self.teacher_dir, "teacher directory has no model.safetensors")
        self._teacher_digest = None

    def teacher_digest(self) -> dict:
        if self._teacher_digest is None:
            self._teacher_digest = {"sha256": runs.sha256_file(self.teacher_weights),
                                    "size": os.path.getsize(self.teacher_weights)}
        return self._teacher_digest

    def check_data(self, stage) -> None:
        super().check_data(stage)
        tok = self.section.get("tokenizer") or {}
        check_same_tokenizer(self.teacher_dir, tok["dir"], tok["kind"], tok.get("mecab_dic"))
        LOG.info("teacher %s tokenizes as the student's data (%s tokenizer %s)", self.teacher_dir, tok["kind"],
                 tok["dir"])

    def extra_run_data(self) -> list[dict]:
        return [self.teacher_digest()]

    def default_init(self):
        t = self.section.get("teacher") or {}
        return runs.InitCheckpoint(path=self.teacher_dir, part={"teacher": t.get("name"), **self.teacher_digest(),
                                                                "teacher_layers": list(self.d["teacher_layers"])})

    def init_state(self, path: str) -> dict:
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):  # the teacher
            teacher = load_teacher(path, "eager")
            state = student_state_from_teacher(teacher.state_dict(), list(self.d["teacher_layers"]),
                                               teacher.config.num_hidden_layers)
            LOG.info("student initialised from teacher %s: embeddings (token type 0 folded into the positions), "
                     "layers %s, MLM head", path, self.d["teacher_layers"])
            return state
        return super().init_state(path)

    def build_model(self, stage, *, seed: int, attention: str = "sdpa", init_state: dict | None = None):
        self.teacher = load_teacher(self.teacher_dir, attention)
        student = student_from_teacher(self.teacher, stage.encoder, list(self.d["teacher_layers"]),
                                       attn_implementation=attention)
        if init_state is not None:
            missing, unexpected = student.load_state_dict(init_state, strict=False)
            missing = [k for k in missing if k != "vocab_projector.weight"]
            if missing or unexpected:
                raise InputError("init", f"student state: missing {missing}, unexpected {unexpected}")
            student.tie_weights()
        return student

    def pretrainer(self, model, stage, options, device):
        cuda = str(device).startswith("cuda")
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
        self.teacher.to(device=device, dtype=dtype)
        LOG.info("teacher %s: %d layers, %s on %s (frozen, eval mode)", self.teacher_dir,
                 self.teacher.config.num_hidden_layers, str(dtype).replace("torch.", ""), device)
        return DistilPretrainer(model, self.teacher, self.d, dtype)

    def denominators(self, mbs: list[dict], device) -> torch.Tensor:
        mlm = sum(m["masked_lm_weights"].sum() for m in mbs).double()
        toks = sum(m["attention_mask"].sum() for m in mbs).double()
        return torch.stack([mlm.to(device), toks.to(device)])

    def metrics(self, stats: torch.Tensor) -> dict:
        s = dict(zip(STAT_NAMES, stats.double().tolist()))
        d = self.d
        ce = s["ce_num"] / s["ce_tokens"] if s["ce_tokens"] else 0.0
        mlm = s["mlm_num"] / s["mlm_weight"] if s["mlm_weight"] else 0.0
        cos = s["cos_num"] / s["tokens"] if s["tokens"] else 0.0
        return {"loss": d["alpha_ce"] * ce + d["alpha_mlm"] * mlm + d["alpha_cos"] * cos, "mlm_loss": mlm,
                "distill_ce_loss": ce, "distill_cos_loss": cos,
                "mlm_accuracy": s["mlm_correct"] / s["mlm_weight"] if s["mlm_weight"] else 0.0,
                "nsp_loss": 0.0, "nsp_accuracy": 0.0}

    def facts(self) -> dict:
        return {**super().facts(), "distillation": dict(self.d),
                "teacher": {**(self.section.get("teacher") or {}), "weights": self.teacher_digest()}}
