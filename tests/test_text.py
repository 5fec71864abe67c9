"""Item text → vectors: the real default encoder (offline) and the on-disk cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the default encoder ships in a package: no hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sentence_transformers  # noqa: E402

from polyrec.text import MINILM, encode_texts, resolve_encoder  # noqa: E402
from synthetic import torch_threads  # noqa: E402

TEXTS = ["a cat sits on the mat", "a kitten is sitting on a rug", "stock markets fell sharply today"]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The real all-MiniLM-L6-v2 vectors of TEXTS, cached in a fresh folder."""
    cache = tmp_path_factory.mktemp("text-cache")
    with torch_threads(1):
        return cache, encode_texts(TEXTS, MINILM, cache_dir=cache, progress=False)


class Refuse:
    def __init__(self, *args, **kwargs):
        raise AssertionError("the cache should have answered without loading a model")


class FakeEncoder:
    """Records what it is asked to encode; vector k of a call is 10 + k in every dimension."""

    built: list[str] = []
    asked: list[list[str]] = []

    def __init__(self, name: str, device: str = "cpu"):
        FakeEncoder.built.append(name)

    def encode(self, texts, **kwargs) -> np.ndarray:
        FakeEncoder.asked.append(list(texts))
        return np.stack([np.full(384, 10.0 + k) for k in range(len(texts))])


@pytest.fixture
def fake(monkeypatch):
    FakeEncoder.built, FakeEncoder.asked = [], []
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeEncoder)
    return FakeEncoder


def test_default_encoder_resolves_to_the_packaged_model() -> None:
    path = Path(resolve_encoder(MINILM))
    assert path.is_dir() and (path / "config.json").is_file()
    assert resolve_encoder(f"sentence-transformers/{MINILM}") == str(path)
    assert resolve_encoder("/some/other/model") == "/some/other/model"


def test_real_encoder_gives_unit_vectors_that_know_synonyms(encoded) -> None:
    _, v = encoded
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cos = v @ v.T
    assert cos[0, 1] > cos[0, 2] + 0.3 and cos[0, 1] > cos[1, 2] + 0.3


def test_cached_texts_load_no_model_and_give_identical_vectors(encoded, monkeypatch) -> None:
    cache, v = encoded
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Refuse)
    again = encode_texts(TEXTS, MINILM, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again, v)
    # Any order and repeats of known texts: rows follow the request.
    mixed = encode_texts([TEXTS[2], TEXTS[0], TEXTS[2]], MINILM, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(mixed, v[[2, 0, 2]])


def test_only_new_texts_are_encoded(encoded, fake, tmp_path) -> None:
    cache, v = encoded
    # A copy of the cache, so the module's cache stays the real encoder's.
    copy = tmp_path / "cache"
    for f in cache.rglob("*"):
        if f.is_file():
            (copy / f.relative_to(cache)).parent.mkdir(parents=True, exist_ok=True)
            (copy / f.relative_to(cache)).write_bytes(f.read_bytes())
    out = encode_texts([TEXTS[0], "a brand new title", TEXTS[2]], MINILM, cache_dir=copy, progress=False)
    assert fake.asked == [["a brand new title"]]
    assert fake.built == [resolve_encoder(MINILM)]
    np.testing.assert_array_equal(out[[0, 2]], v[[0, 2]])
    np.testing.assert_array_equal(out[1], np.full(384, 10.0, dtype=np.float32))
    # ... and the new text is cached from now on.
    fake.asked.clear()
    encode_texts(["a brand new title"], MINILM, cache_dir=copy, progress=False)
    assert fake.asked == []
    assert not list(copy.rglob("*.tmp.npz"))  # the cache is replaced atomically


def test_two_runs_encoding_at_once_both_finish(fake, tmp_path, monkeypatch) -> None:
    """Another run writes the cache between this run's write and its rename (two processes
    on one cache, or two threads): both finish, and the cache holds the later one's texts."""
    import polyrec.atomic as atomic

    replace, interleaved = os.replace, []

    def replace_after_another_run(src, dst):
        if not interleaved:
            interleaved.append(True)
            encode_texts(["another run's title"], MINILM, cache_dir=tmp_path, progress=False)
        replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_after_another_run)
    out = encode_texts(["this run's title"], MINILM, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(out[0], np.full(384, 10.0, dtype=np.float32))
    assert interleaved and not list(tmp_path.rglob("*.tmp.npz"))
    monkeypatch.setattr(atomic.os, "replace", replace)
    fake.asked.clear()
    encode_texts(["this run's title"], MINILM, cache_dir=tmp_path, progress=False)
    assert fake.asked == []  # the later rename, this run's, holds its text


def test_cache_is_keyed_by_model(encoded, fake) -> None:
    cache, _ = encoded
    encode_texts(TEXTS[:2], "/models/another-encoder", cache_dir=cache, progress=False)
    assert fake.built == ["/models/another-encoder"]
    assert sorted(fake.asked[0]) == sorted(TEXTS[:2])  # MiniLM's vectors are not reused


def test_max_tokens_reads_a_text_up_to_that_many_tokens_and_caches_apart(encoded) -> None:
    cache, v = encoded
    long = TEXTS[0] + " while stock markets fell sharply today"  # "a cat sits on the mat": 6 tokens
    with torch_threads(1):
        whole = encode_texts([long], MINILM, cache_dir=cache, progress=False)
        cut = encode_texts([long], MINILM, cache_dir=cache, progress=False, max_tokens=8)  # [CLS] + 6 + [SEP]
    np.testing.assert_allclose(cut[0], v[0], atol=1e-5)  # the long text read as its first six tokens
    assert float(whole[0] @ v[0]) < 0.99  # read whole, the tail counts
    assert any(p.name.endswith("-max8") for p in (cache / "text").iterdir())
    with pytest.raises(ValueError, match="text.max_tokens"):
        encode_texts(["a new text"], MINILM, cache_dir=cache, progress=False, max_tokens=0)
    from polyrec.config import RunConfig

    with pytest.raises(ValueError, match="text.max_tokens"):  # a config says so as it loads
        RunConfig.from_dict({"text": {"max_tokens": 0}})


def test_an_encoder_that_cannot_be_loaded_is_one_line_naming_the_setting(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"^text.encoder 'no-such-encoder-v9' cannot be loaded \(.*\); offline, name") as info:
        encode_texts(["a title"], "no-such-encoder-v9", cache_dir=tmp_path, progress=False)
    assert "\n" not in str(info.value)


def test_fields_encoded_apart_average_the_fields_an_item_has() -> None:
    from polyrec.text.fields import mean_of_fields

    vocab = {"kettle": [1.0, 0, 0], "kitchen": [0, 1.0, 0], "mug": [0, 0, 1.0], "x9": [0.6, 0.8, 0]}
    asked: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        asked.append(texts)
        return np.array([vocab[t] for t in texts])

    titles = ["kettle", "mug", None]
    categories = ["kitchen", float("nan"), "  "]
    out = mean_of_fields([titles, categories], ["joined 0", "joined 1", "x9"], encode)
    np.testing.assert_allclose(out[0], np.array([1.0, 1.0, 0]) / np.sqrt(2))  # the mean of both, normalised
    np.testing.assert_allclose(out[1], [0, 0, 1.0])  # a missing field is left out, not encoded as ""
    np.testing.assert_allclose(out[2], [0.6, 0.8, 0])  # no field at all: its whole text (here its id)
    assert asked == [["kettle", "mug", "kitchen", "x9"]]  # one call; a missing field is never asked for
    with pytest.raises(ValueError, match="2 values for 3 items"):
        mean_of_fields([["a", "b"]], ["a", "b", "c"], encode)


def test_a_field_past_the_encoders_window_still_reaches_the_item_vector(tmp_path) -> None:
    """Joined, a long title cuts the category off; encoded apart, the category still counts."""
    from polyrec.text.fields import mean_of_fields

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(texts, MINILM, cache_dir=tmp_path, progress=False, max_tokens=8)

    title = "a cat sits on the mat"  # 6 tokens: all the window of 8 holds
    categories = ["kitchen appliances", "garden tools"]
    with torch_threads(1):
        joined = encode([f"title: {title}. categories: {c}" for c in categories])
        apart = mean_of_fields([[title, title], categories], ["", ""], encode)
    assert float(joined[0] @ joined[1]) > 0.999  # the category was never read
    assert float(apart[0] @ apart[1]) < 0.95


def test_a_run_encodes_a_generic_folders_text_columns_apart_unless_told_not_to(tmp_path) -> None:
    from polyrec.config import RunConfig
    from polyrec.data.generic import load_generic
    from polyrec.pipeline import item_text_vectors

    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "dataset.yaml").write_text(
        "interactions: {path: events.csv, user: u, item: i}\nitems: {path: items.csv, id: i, text: [title, category]}\n"
    )
    (folder / "events.csv").write_text("u,i\na,k1\na,k2\nb,k3\n")
    (folder / "items.csv").write_text("i,title,category\nk1,blue kettle,kitchen\nk2,red mug,\nk3,,\n")
    ds = load_generic(folder)
    cfg = RunConfig.from_dict({"text": {"cache_dir": str(tmp_path / "cache")}})
    with torch_threads(1):
        apart = item_text_vectors(ds, cfg, progress=False)
        cfg.text.per_field = False
        joined = item_text_vectors(ds, cfg, progress=False)
        alone = encode_texts(["blue kettle", "kitchen", "red mug", "k3"], MINILM, cache_dir=tmp_path / "cache", progress=False)
    mean = alone[0] + alone[1]
    np.testing.assert_allclose(apart[0], mean / np.linalg.norm(mean), atol=1e-5)  # title and category, averaged
    np.testing.assert_allclose(apart[1], alone[2], atol=1e-5)  # no category: the title alone
    np.testing.assert_allclose(apart[2], alone[3], atol=1e-5)  # neither: its id, as the joined text
    assert ds.items["text"].tolist()[0] == "title: blue kettle. category: kitchen"
    assert float(joined[0] @ apart[0]) < 0.99  # joined, it is another text
