"""``polyrec export``: a run's next-item recommender written as files (see format.py).

The export is checked before it is called done: a sample of known users is scored both by
the run (PyTorch) and by the exported files (onnxruntime), and the largest difference and
the top-10 agreement are written into the manifest. An fp32 export that differs by more than
:data:`TOLERANCE` is an error; an int8 one is expected to differ a little and is reported.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .. import __version__
from ..models.prior_maps import by_source
from ..recommender import Recommender
from ..run_loader import INTERACTIONS, ITEMS, USERS, load_run
from ..top_k import top_k_allowed
from .format import FORMAT, GRAPH, HISTORIES, ITEM_VECTORS, MANIFEST, ONNX_EXTRA, PRIOR_FILE, VERSION, MissingExtra
from .graph import quiet_exporter, write_graph
from .reader import ExportedRecommender, KnownHistories

TOLERANCE = 1e-3  # largest score difference of an fp32 export (scores are standardised with priors)


class ExportMismatch(ValueError):
    """The exported files do not score as the run does (a ValueError: the CLI says it in one line)."""


@dataclass(frozen=True)
class ExportCheck:
    users: int  # known users scored both ways
    max_abs_difference: float  # over their whole-catalogue scores
    top10_agreement: float  # mean share of each user's top 10 (seen items excluded) in common


def export_run(run: str | Path, out: str | Path, int8: bool = False, check_users: int = 256) -> dict:
    """Write ``run``'s next-item recommender into ``out``; returns the manifest (with the check)."""
    run, out = Path(run), Path(out)
    rec = load_run(run)
    if not isinstance(rec, Recommender):
        raise ValueError(f"{run}: only runs of polyrec's own model export (this one holds a {type(rec).__name__})")
    model, histories = rec.next_item_model()
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ValueError(f"{out}: exists and is not an export folder; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # a folder half rewritten is no export until the end
    write_graph(model, out / GRAPH)
    if int8:
        quantize_int8(out / GRAPH)
    np.save(out / ITEM_VECTORS, rec.item_vectors())
    priors = []
    for name, prior in model.named_priors():
        sp.save_npz(out / PRIOR_FILE.format(name=name), by_source(prior))
        priors.append({"name": name, "share": float(prior.share), "decay": float(prior.decay), "file": PRIOR_FILE.format(name=name)})
    KnownHistories(histories.items, histories.tokens, histories.labels).write(out / HISTORIES)
    for name in (ITEMS, USERS, INTERACTIONS):
        shutil.copy2(run / name, out / name)
    spec = model.spec
    manifest = {
        "format": FORMAT, "version": VERSION, "polyrec": __version__, "run": str(run), "int8": int8,
        "items": spec.n_items, "dim": spec.config.dim, "max_history": spec.config.max_history,
        "rating_levels": [float(v) for v in spec.rating_levels], "labels_only": bool(spec.labels_only), "priors": priors,
        "repeat_items": bool(spec.repeat_items),  # the run's users take items again: recommend them too
        "reads_user_text": model.user_text_projection is not None,  # its graph reads a known user's text by index
    }
    write_manifest(out, manifest)
    check = check_export(rec, ExportedRecommender.load(out), check_users)
    manifest["check"] = check.__dict__
    if not int8 and check.max_abs_difference > TOLERANCE:
        (out / MANIFEST).unlink()  # the files stay for a look, but do not load as an export
        raise ExportMismatch(
            f"{out}: the exported files score {check.users} users up to {check.max_abs_difference:.2g} away from the run (tolerance {TOLERANCE})"
        )
    write_manifest(out, manifest)
    return manifest


def write_manifest(out: Path, manifest: dict) -> None:
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def quantize_int8(graph: Path) -> None:
    """The graph's matrix weights to int8 in place (activations quantized per call:
    onnxruntime's dynamic quantization, which reads the fused attention projection that
    torch's own dynamic quantization cannot)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise MissingExtra(f"int8 export needs onnxruntime: {ONNX_EXTRA}") from e
    full = graph.with_suffix(".fp32.onnx")
    graph.replace(full)
    with quiet_exporter():  # its advice to pre-process image models, logged as a warning
        quantize_dynamic(str(full), str(graph), weight_type=QuantType.QInt8)
    full.unlink()


def check_export(rec: Recommender, exported: ExportedRecommender, users: int, seed: int = 0) -> ExportCheck:
    """Score a sample of known users both ways (see the module's docstring)."""
    n_users = len(exported.histories.items)
    sample = np.sort(np.random.default_rng(seed).permutation(n_users)[: min(users, n_users)])
    expected, got = rec.catalogue_scores(sample), exported.catalogue_scores(sample)
    k, ids = min(10, rec.n_items), rec.users_["user_id"].astype(str).to_numpy()
    seen = [rec.seen_items(ids[u]) for u in sample]
    common = [len(set(top_k_allowed(expected[r], k, seen[r])[0]) & set(top_k_allowed(got[r], k, seen[r])[0])) / k for r in range(len(sample))]
    return ExportCheck(len(sample), float(np.abs(expected - got).max()) if len(sample) else 0.0, float(np.mean(common)) if common else 1.0)
