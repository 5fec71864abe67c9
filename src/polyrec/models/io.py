"""Save and load a model: weights in safetensors, its spec (and so its config) in YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..config import ModelConfig, config_from_dict
from ..run_loader import SEED_MODELS_DIR
from .polyrec import ModelSpec, PolyRecModel

WEIGHTS, SPEC = "model.safetensors", "spec.yaml"


def save_model(model: PolyRecModel, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    spec = dataclasses.asdict(model.spec)
    (folder / SPEC).write_text(yaml.safe_dump(spec, sort_keys=False))


def load_model(folder: str | Path) -> PolyRecModel:
    folder = Path(folder)
    for name in (WEIGHTS, SPEC):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing; is this a saved polyrec model folder?")
    raw = yaml.safe_load((folder / SPEC).read_text())
    # Nested fields (model.mtl) become dataclasses again; a spec saved before a field existed
    # gets its default, which is what that model was trained with.
    raw["config"] = config_from_dict(ModelConfig, raw["config"], f"{folder / SPEC}: config")
    if raw.get("rating_range") is not None:
        raw["rating_range"] = tuple(raw["rating_range"])
    model = PolyRecModel(ModelSpec(**raw))
    model.load_state_dict(_kept_for_new_users(_moved_ctr_join(load_file(str(folder / WEIGHTS)))))
    model.eval()
    return model


def _moved_ctr_join(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved before the ctr join moved from the item autoencoder to the model: its
    ``item_autoencoder.ctr_join`` becomes the model's ``ctr_join``, and the unused copies
    the autoencoder's twins inherited are dropped."""
    if "item_autoencoder.ctr_join" not in state:
        return state
    moved = {k: v for k, v in state.items() if not k.endswith("autoencoder.ctr_join")}
    moved["ctr_join"] = state["item_autoencoder.ctr_join"]
    return moved


def _kept_for_new_users(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved before the parts kept what a new user's rows are folded in from (the
    engagement autoencoder's offset, the kNN views' baseline): none kept, so those parts fold
    nothing in (``PolyRecModel.fold_in``). Before the tf-idf profile view kept the height of
    an unrated interaction, it counted as the lowest rating (1)."""
    state = dict(state)
    if "history_profile.lowest" in state and "history_profile.unrated" not in state:
        state["history_profile.unrated"] = torch.tensor(1.0)
    if "engagement_autoencoder.weight" in state and "engagement_autoencoder.offset" not in state:
        state.update({"engagement_autoencoder.offset": torch.tensor(0.0), "engagement_autoencoder.offset_kept": torch.tensor(False)})
    for view in ("item_neighbors", "text_neighbors"):
        if f"{view}.weight" in state and f"{view}.baseline_kept" not in state:
            n_items = len(state[f"{view}.neighbors"])
            state.update({f"{view}.baseline_mean": torch.tensor(0.0), f"{view}.item_baseline": torch.zeros(n_items),
                          f"{view}.baseline_kept": torch.tensor(False)})  # fmt: skip
    return state


def trained_seeds(run: str | Path, protocol: str) -> list[int]:
    """Seeds a run has a saved model for under ``protocol`` (its config's, and any that
    another process sharing the folder has finished): ``seeds/<protocol>/seed<k>/``."""
    folders = (Path(run) / SEED_MODELS_DIR / protocol).glob("seed*")
    return sorted(int(f.name[4:]) for f in folders if f.name[4:].isdigit() and (f / WEIGHTS).is_file())
