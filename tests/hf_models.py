"""Tiny Hugging Face models for the hf backend's tests, made here: a config with random weights
and a tokenizer trained on the fly with `tokenizers`, saved with save_pretrained, so that
loading goes through the real from_pretrained code (no Hub, no network)."""

from __future__ import annotations

import json
from pathlib import Path

from routelab.services.demo import demo_data_dir

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]


def corpus() -> list[str]:
    """The demo's questions and actions: what the tokenizer learns its words from."""
    root = demo_data_dir()
    texts = [json.loads(line).get("question") or json.loads(line).get("text") or ""
             for name in ("questions.jsonl",) if (root / name).exists()
             for line in (root / name).read_text().splitlines() if line.strip()]
    texts += [p.read_text() for p in root.iterdir() if p.suffix in (".json", ".csv", ".jsonl")]
    return texts + ["You are an intent router.", '{"action": "get_payslip"}']


def _tokenizer(kind: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]") if kind == "bert" else models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]) if kind == "bert" else None
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer() if kind == "bert" else pre_tokenizers.ByteLevel(
        add_prefix_space=False)
    trainer_cls = trainers.WordPieceTrainer if kind == "bert" else trainers.BpeTrainer
    extra = {} if kind == "bert" else {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()}
    tok.train_from_iterator(corpus(), trainer_cls(vocab_size=600, special_tokens=SPECIALS, **extra))
    if kind == "bert":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        tok.decoder = decoders.WordPiece()
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]")
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>")


def tiny_encoder(path: Path) -> Path:
    """A 2-layer, 32-wide BERT with random weights and its own WordPiece tokenizer."""
    from transformers import BertConfig, BertModel

    tokenizer = _tokenizer("bert")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_causal_lm(path: Path) -> Path:
    """A 2-layer, 32-wide Llama with random weights and its own byte-level BPE tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer("llama")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=2048,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
