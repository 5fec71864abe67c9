"""The profile refit of a distilled student, with and without the teacher's soft labels.

    python benchmarks/profile_refit.py runs/distillTiny3/distilled runs/ml100k

For each protocol-A seed of the distilled run (first argument), on its frozen student, the
profile head is re-initialised and refit twice — on the training users' true attributes
alone, and on those plus the teacher's (second argument) distributions for every user, as
`polyrec distill` does — and the gender AUC of each is printed on the validation and test
users, then mean ± std over seeds. Only the head trains; nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from polyrec.config import RunConfig
from polyrec.distill.objective import DistillObjective
from polyrec.distill.teacher import load_teacher
from polyrec.eval.metrics import auc
from polyrec.eval.predict import profile_probabilities
from polyrec.models.io import load_model
from polyrec.pipeline import load_configured_dataset
from polyrec.run_loader import seed_model_folder
from polyrec.train.protocol_data import prepare
from polyrec.train.refit_head import refit_profile_head


def reset_head(head: torch.nn.Module) -> None:
    for m in head.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            m.reset_parameters()
    for part in (head.wide_seen, head.wide_rating, None if head.text is None else head.text[1]):
        if part is not None:
            torch.nn.init.zeros_(part.weight)  # as a new head starts


def main(student_run: Path, teacher_run: Path, attribute: str = "gender") -> None:
    torch.set_num_threads(1)
    cfg = RunConfig.load(student_run / "config.yaml")
    ds = load_configured_dataset(cfg)
    scores: dict[str, list[tuple[float, float]]] = {"true labels": [], "true + teacher": []}
    for seed in cfg.seeds:
        data = prepare(ds, "A", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, True)
        objective = DistillObjective(load_teacher(teacher_run, "A", seed), data.profile_labels, cfg.distill, "A", cfg.model.dim)
        for name, soft in (("true labels", None), ("true + teacher", objective.profile_refit_targets(data))):
            model = load_model(seed_model_folder(student_run, "A", seed))
            torch.manual_seed(seed)
            reset_head(model.heads["profile"])
            epoch = refit_profile_head(model, data, cfg.train, soft=soft)
            truth = data.profile_true[attribute]
            got = []
            for side in (data.valid, data.test):
                users = side.profile_users
                got.append(auc(truth[users], profile_probabilities(model, data.train, users)[attribute][:, 1]))
            scores[name].append((got[0], got[1]))
            print(f"seed {seed}, {name}: refit epoch {epoch}, {attribute} AUC valid {got[0]:.4f}, test {got[1]:.4f}", flush=True)
    for name, v in scores.items():
        a = np.array(v)
        print(f"{name}: valid {a[:, 0].mean():.4f} ± {a[:, 0].std(ddof=1):.4f}, test {a[:, 1].mean():.4f} ± {a[:, 1].std(ddof=1):.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
