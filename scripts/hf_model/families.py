"""Model families beyond BERT pretraining, and tokenizer files for every tokenizer type.

* **Tokenizer files** (:func:`write_tokenizer_files`), by tokenizer kind:

  ==================== ==========================================================================
  ``wordpiece``,       ``vocab.txt`` + ``BertJapaneseTokenizer`` (MeCab + WordPiece | character)
  ``character``
  ``mecab_sentencepiece`` ``vocab.txt`` + ``spiece.model`` + ``BertJapaneseTokenizer`` with
                       ``subword_tokenizer_type: sentencepiece`` and ``spm_file`` (MeCab first, then
                       SentencePiece per word: :mod:`scripts.tokenizers.sentencepiece`); loads with
                       ``AutoTokenizer`` without remote code
  ``sentencepiece``    ``tokenizer.json`` (a fast tokenizer: offsets; ``[CLS] ... [SEP]`` added by
                       its post-processor) + ``PreTrainedTokenizerFast`` config
  ==================== ==========================================================================

* **RoBERTa and DistilBERT** (:func:`convert_family`): the PyTorch backend's checkpoint of a
  ``roberta`` (MLM only) or ``distilbert`` (distilled) model already holds a transformers
  ``RobertaForMaskedLM`` / ``DistilBertForMaskedLM`` state dict and config
  (:mod:`scripts.training.mlm`, :mod:`scripts.training.distill`): it is loaded strictly, checked
  against the stage YAML, and written with its tokenizer files and ``provenance.json``, under a
  temporary name renamed whole (the model card is the release stage's, written after the
  evaluation: :mod:`scripts.release.card`). The RoBERTa models follow
  RoBERTa's conventions, so none of the rinna card's manual steps is needed: ``[PAD]`` is id 1,
  position ids start at ``padding_idx + 1`` (what ``RobertaModel`` computes when no
  ``position_ids`` are given, and what training used), ``max_position_embeddings`` is the
  sequence length + 2, and the tokenizer adds ``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

import os
import shutil

from scripts.shared.common import LOG, InputError, atomic_dir, write_json

BERT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                       "cls_token": "[CLS]", "mask_token": "[MASK]"}
KINDS = ("wordpiece", "character", "mecab_sentencepiece", "sentencepiece")
FAMILY_CLASSES = {"roberta": "RobertaForMaskedLM", "distilbert": "DistilBertForMaskedLM"}


def tokenizer_kind(subword: str, mecab_dic: str | None) -> str:
    """The tokenizer kind of a tokenizer type (``subword``) and its MeCab dictionary."""
    if subword in ("wordpiece", "character"):
        return subword
    if subword == "sentencepiece":
        return "sentencepiece" if mecab_dic in (None, "", "none", "None") else "mecab_sentencepiece"
    raise ValueError(f"unknown subword tokenizer {subword!r}")


def bert_japanese_config(*, subword: str, mecab_dic: str, model_max_length: int,
                         model_input_names=("input_ids", "token_type_ids", "attention_mask")) -> dict:
    cfg = {
        "tokenizer_class": "BertJapaneseTokenizer",
        "do_lower_case": False,
        "do_word_tokenize": True,
        "do_subword_tokenize": True,
        "word_tokenizer_type": "mecab",
        "subword_tokenizer_type": subword,
        "mecab_kwargs": {"mecab_dic": mecab_dic},
        "model_max_length": model_max_length,
        "model_input_names": list(model_input_names),
        **BERT_SPECIAL_TOKENS,
    }
    if subword == "sentencepiece":
        cfg["spm_file"] = "spiece.model"
    return cfg


def fast_config(*, model_max_length: int, model_input_names=("input_ids", "attention_mask")) -> dict:
    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
            "model_input_names": list(model_input_names), "bos_token": "[CLS]", "eos_token": "[SEP]",
            "clean_up_tokenization_spaces": False, **BERT_SPECIAL_TOKENS}


def write_tokenizer_files(out_dir, *, kind: str, tokenizer_dir, mecab_dic: str | None, model_max_length: int,
                          model_input_names=None) -> list[str]:
    """Copy a tokenizer directory's files into a model directory and write its configs."""
    src = os.fspath(tokenizer_dir)
    out = os.fspath(out_dir)
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    names = {"wordpiece": ["vocab.txt"], "character": ["vocab.txt"],
             "mecab_sentencepiece": ["vocab.txt", "spiece.model"], "sentencepiece": ["tokenizer.json"]}[kind]
    for n in names:
        path = os.path.join(src, n)
        if not os.path.isfile(path):
            raise InputError(path, f"tokenizer file missing (a {kind} tokenizer needs {', '.join(names)})")
        shutil.copyfile(path, os.path.join(out, n))
    if kind == "sentencepiece":
        cfg = fast_config(model_max_length=model_max_length,
                          **({"model_input_names": model_input_names} if model_input_names else {}))
        special = {k: cfg[k] for k in ("bos_token", "eos_token", *BERT_SPECIAL_TOKENS)}
    else:
        cfg = bert_japanese_config(subword="sentencepiece" if kind == "mecab_sentencepiece" else kind,
                                   mecab_dic=mecab_dic, model_max_length=model_max_length,
                                   **({"model_input_names": model_input_names} if model_input_names else {}))
        special = dict(BERT_SPECIAL_TOKENS)
    write_json(os.path.join(out, "tokenizer_config.json"), cfg)
    write_json(os.path.join(out, "special_tokens_map.json"), special)
    return names + ["tokenizer_config.json", "special_tokens_map.json"]


# ---------------------------------------------------------------------------------------------
# RoBERTa / DistilBERT checkpoints of the PyTorch backend
# ---------------------------------------------------------------------------------------------


def checkpoint_family(path: str) -> str | None:
    """``roberta`` / ``distilbert`` for a PyTorch-backend checkpoint of those families, else
    ``None`` (BERT pretraining checkpoints, Model Garden checkpoints)."""
    import torch

    from scripts.training.torch_checkpoint import CKPT_RE, resolve_checkpoint

    if not (os.path.isdir(path) or CKPT_RE.match(os.path.basename(path))):
        return None
    try:
        ckpt = resolve_checkpoint(path)
        ck = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)  # mapped: tensors not read
    except Exception:  # noqa: BLE001 - not a readable torch checkpoint: not ours to convert here
        return None
    family = (ck.get("family") or {}).get("name") if isinstance(ck, dict) else None
    return family if family in FAMILY_CLASSES else None


def load_family_model(config: str, checkpoint: str):
    """``(model, family, stage, checkpoint path, step)`` from a family checkpoint, checked against
    the final stage's YAML."""
    from scripts.training.mlm import model_config_from_dict, model_class
    from scripts.training.torch_checkpoint import load_checkpoint, resolve_checkpoint
    from scripts.training.torch_config import read_stage

    stage = read_stage(config)
    ckpt = resolve_checkpoint(checkpoint)
    ck = load_checkpoint(ckpt)
    family = (ck.get("family") or {}).get("name")
    if family not in FAMILY_CLASSES:
        raise InputError(ckpt, f"not a RoBERTa or DistilBERT checkpoint (family {family!r})")
    cfg = model_config_from_dict(ck["bert_config"])
    enc = stage.encoder
    n_layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None)
    bad = [f"{k} {got} != {want}" for k, got, want in (("vocab_size", cfg.vocab_size, enc["vocab_size"]),
                                                       ("layers", n_layers, enc["num_layers"]),
                                                       ("hidden_size", hidden, enc["hidden_size"]))
           if got != want]
    if bad:
        raise InputError(ckpt, f"checkpoint's model does not match {config}: " + "; ".join(bad))
    model = model_class(family)(cfg)
    result = model.load_state_dict(ck["model"], strict=True)
    if getattr(result, "missing_keys", None) or getattr(result, "unexpected_keys", None):
        raise InputError(ckpt, f"load_state_dict: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    model.tie_weights()
    model.eval()
    step = int(ck["step"])
    if step != stage.train_steps:
        LOG.warning("%s is at step %d, the config's train_steps is %d", ckpt, step, stage.train_steps)
    return model, family, ck.get("family") or {}, ckpt, step


def convert_family(*, config: str, checkpoint: str, tokenizer_dir: str, subword: str, mecab_dic: str | None,
                   model_name: str, card: dict, provenance: dict, output_dir: str) -> dict:
    """``hf_model/<name>/`` for a RoBERTa or DistilBERT checkpoint (module docstring)."""
    model, family, facts, ckpt, step = load_family_model(config, checkpoint)
    kind = tokenizer_kind(subword, mecab_dic)
    want = facts.get("tokenizer_kind")
    if want and want != kind:
        raise InputError(ckpt, f"trained with a {want} tokenizer, converting with {kind}")
    max_len = (model.config.max_position_embeddings - model.config.pad_token_id - 1 if family == "roberta"
               else model.config.max_position_embeddings)
    names = ("input_ids", "attention_mask")
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(str(tmp))
        write_tokenizer_files(tmp, kind=kind, tokenizer_dir=tokenizer_dir, mecab_dic=mecab_dic,
                              model_max_length=max_len, model_input_names=names)
        write_json(tmp / "provenance.json", provenance)
        mask = os.umask(0)
        os.umask(mask)
        for p in tmp.iterdir():
            p.chmod(0o666 & ~mask)
        files = sorted(p.name for p in tmp.iterdir())
    LOG.info("wrote %s: %s", output_dir, ", ".join(files))
    LOG.info("built %s: %s (%s), %d parameters", output_dir, FAMILY_CLASSES[family], family, n_params)
    return {"output_dir": output_dir, "parameters": n_params, "checkpoint": ckpt, "step": step, "family": family}
