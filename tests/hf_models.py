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


def _tokenizer(kind: str, vocab: int = 600):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]") if kind == "bert" else models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]) if kind == "bert" else None
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer() if kind == "bert" else pre_tokenizers.ByteLevel(
        add_prefix_space=False)
    trainer_cls = trainers.WordPieceTrainer if kind == "bert" else trainers.BpeTrainer
    extra = {} if kind == "bert" else {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()}
    tok.train_from_iterator(corpus(), trainer_cls(vocab_size=vocab, special_tokens=SPECIALS, **extra))
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
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)  # the same random weights every session: a run's outcome does not vary
    tokenizer = _tokenizer("bert")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_causal_lm(path: Path) -> Path:
    """A 2-layer, 32-wide Llama with random weights and its own byte-level BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = _tokenizer("llama", vocab=3000)  # a larger vocabulary: shorter prompts, faster tests
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=2048,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# Short descriptions: LoRA prompts carry the whole catalog, and tiny tests want short prompts.
SHORT_ACTIONS = [("get_payslip", "payslips and pay"), ("book_holiday", "book leave or holidays"),
                 ("get_policy", "what a company policy says"), ("escalate", "complaints for a person")]


def small_workspace(path: Path, per_action: int = 12, test_per_action: int = 3):
    """A workspace of the demo's labelled questions, a few per action, with short action descriptions."""
    from routelab.domain import Action, NewExample
    from routelab.store import Store

    rows = [json.loads(line) for line in (demo_data_dir() / "questions.jsonl").read_text().splitlines() if line]
    store = Store.open(path, create=True)
    store.upsert_actions([Action(name=n, description=d, code=i) for i, (n, d) in enumerate(SHORT_ACTIONS)])
    examples = []
    for name, _ in SHORT_ACTIONS:
        mine = [r for r in rows if r.get("label") == name]
        examples += [NewExample(text=r["text"], label=name, split="train") for r in mine[:per_action]]
        examples += [NewExample(text=r["text"], label=name, split="test")
                     for r in mine[per_action:per_action + test_per_action]]
    store.add_examples(examples)
    return store


# ---------------------------------------------------------------------------- fixtures (import them)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def hf_encoder(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return tiny_encoder(tmp_path_factory.mktemp("hf") / "tiny-bert")


@pytest.fixture(scope="session")
def hf_causal_lm(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    return tiny_causal_lm(tmp_path_factory.mktemp("hf") / "tiny-llama")


@pytest.fixture
def hf_small_store(tmp_path):
    store = small_workspace(tmp_path / "small.db")
    yield store
    store.close()
