"""What live events cost a known user's answers (`polyrec serve --live-events`, docs/serving.md):
each answer from the run's own rows against the same from the user's history grown by three
new events (``predict_history`` and ``profile_history`` + ``interests_history`` with
``as_user``, ``explain_history``), as the service answers them, in process, one thread, the
run's first 60 users.

    python benchmarks/live_answers.py runs/ml100k
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
import torch

import polyrec


def main(run: str, n_users: int = 60) -> None:
    torch.set_num_threads(1)
    rec = polyrec.load(run)
    users = rec.users_["user_id"].astype(str).tolist()[:n_users]
    items = rec.items_["item_id"].astype(str).tolist()
    rng = np.random.default_rng(0)
    grown = {}
    for user in users:
        history, values = rec.history_of(user)
        grown[user] = (history + list(rng.choice(items, 3)), values + [None] * 3)  # three clicks
    targets = items[:5]

    def timed(answer: Callable[[str], object]) -> str:
        answer(users[0])  # warm
        seconds = []
        for user in users:
            start = time.perf_counter()
            answer(user)
            seconds.append(time.perf_counter() - start)
        return f"p50 {np.median(seconds) * 1e3:.1f} ms, p99 {np.percentile(seconds, 99) * 1e3:.1f} ms"

    print(f"{run}: {len(users)} users, history length median {np.median([len(grown[u][0]) for u in users]):.0f}")
    print("predict 5 items, the run's rows:  ", timed(lambda u: rec.predict([u] * 5, targets)))
    print("predict 5 items, grown history:   ", timed(lambda u: rec.predict_history(grown[u][0], targets, grown[u][1], as_user=u)))
    print("profile, the run's rows:          ", timed(lambda u: (rec.profile(u), rec.interests(u))))
    print("profile, grown history:           ", timed(lambda u: (rec.profile_history(*grown[u], as_user=u), rec.interests_history(*grown[u]))))
    print("explain 1 item, the run's rows:   ", timed(lambda u: rec.explain(u, targets[0])))
    print("explain 1 item, grown history:    ", timed(lambda u: rec.explain_history(grown[u][0], targets[0], grown[u][1])))


if __name__ == "__main__":
    main(sys.argv[1])
