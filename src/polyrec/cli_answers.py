"""The commands that answer from a saved run: ``polyrec recommend``, ``predict``, ``profile``, ``explain``,
``fairness``, ``robustness`` and ``export`` (cli.py parses them; each is a thin call into the library).
Runs load through ``run_loader``, which imports torch only for a run that needs it (an
exported one does not)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def recommend(args: argparse.Namespace) -> None:
    from .run_loader import load_run as load

    _events_or_histories(args)
    if args.user is None:
        _recommend_many(args)
        return
    if args.out is not None:
        raise ValueError("--out writes the recommendations of --users, --all-users or --histories; --user prints them")
    rec = load(args.run)
    grown = _grown_histories(rec, args, [args.user]) if args.events else {}
    if grown:
        recs = _history_top(rec, args.user, *grown[args.user], args)
    else:
        recs = rec.recommend(args.user, k=args.k, exclude_seen=_exclude_seen(args), popularity_penalty=args.popularity_penalty)
    for rank, row in enumerate(recs.itertuples(index=False), 1):
        print(f"{rank:>3}. {shortened(row.text)}  (item {row.item_id}, score {row.score:.3f})")


def _exclude_seen(args: argparse.Namespace) -> bool | None:
    """``--include-seen`` / ``--exclude-seen`` as asked; neither: the run's default."""
    return True if args.exclude_seen else False if args.include_seen else None


def _recommend_many(args: argparse.Namespace) -> None:
    import pandas as pd

    from .run_loader import load_run as load

    out = _table_path(args.out, "recommendations of --users, --all-users or --histories")
    rec = load(args.run)
    if args.histories is not None:
        recs = _recommend_histories(rec, _histories(args, rec, "recommend_history"), args)
    else:
        user_ids = _asked_users(args, rec)
        grown = _grown_histories(rec, args, user_ids) if args.events else {}
        recs = rec.recommend_many(
            [u for u in user_ids if u not in grown], k=args.k, exclude_seen=_exclude_seen(args), progress=not args.quiet,
            popularity_penalty=args.popularity_penalty,
        )  # fmt: skip
        if grown:  # their rows in the users' order, as recommend_many gives the others'
            recs = pd.concat([recs, _recommend_histories(rec, grown, args)], ignore_index=True)
            order = {u: k for k, u in enumerate(user_ids)}
            recs = recs.sort_values(["user_id", "rank"], key=lambda c: c.map(order) if c.name == "user_id" else c, ignore_index=True)
    _write_table(recs, out)
    print(f"wrote {len(recs)} recommendations for {recs['user_id'].nunique()} users to {out}")


def _recommend_histories(rec, histories: dict[str, tuple[list[str], list[float | None]]], args: argparse.Namespace) -> pd.DataFrame:
    """Each user's top k from the history given (``--histories``', or a known user's grown by
    ``--events``) by ``recommend_history``, in ``recommend_many``'s table."""
    import numpy as np
    import pandas as pd

    from .progress import bar

    if args.k < 1:
        raise ValueError(f"k must be at least 1, got {args.k}")
    parts = []
    for user in bar(list(histories), "recommending", not args.quiet):
        top = _history_top(rec, user, *histories[user], args)
        parts.append(pd.DataFrame({"user_id": user, "rank": np.arange(1, len(top) + 1), "item_id": top["item_id"], "score": top["score"]}))
    return pd.concat(parts, ignore_index=True)


def _history_top(rec, user: str, items: list[str], ratings: list[float | None], args: argparse.Namespace) -> pd.DataFrame:
    """``recommend_history``'s top k (item_id, text, score) of one user's history; a known
    user grown by ``--events`` reads as that user, their text included."""
    text = _events_text(rec, user, args)
    return rec.recommend_history(
        items, ratings, k=args.k, exclude_seen=_exclude_seen(args), popularity_penalty=args.popularity_penalty,
        **({"user_text": text} if text else {}),
    )  # fmt: skip


def _grown_histories(
    rec, args: argparse.Namespace, users: list[str], reader: str = "recommend_history"
) -> dict[str, tuple[list[str], list[float | None]]]:
    """``--events``: each of ``users`` who has events in the store since the run's data, with
    their history grown by them, as ``polyrec serve --live-events`` reads it (serve/live.py).
    ``reader``: the run's history method that will answer from them."""
    from .serve import live
    from .serve.events import EventStore

    if not Path(args.events).is_file():
        raise FileNotFoundError(f"{args.events}: no event store")
    if not live.reads_live_events(rec) or not hasattr(rec, reader):
        raise ValueError(f"the run type of {args.run} cannot read a history grown by events")
    store = EventStore(args.events)
    written = live.tables_written_at(args.run)
    threshold = live.live_threshold(args.run) if rec.values_are_labels else None
    grown, read = {}, 0
    try:
        for user in users:
            history = live.grown(rec, store, user, written, threshold)
            if history is not None:
                grown[user], read = (history.items, history.values), read + history.new_events
    finally:
        store.close()
    print(f"read {read} new events of {len(grown)} users from {args.events}")
    return grown


def _events_or_histories(args: argparse.Namespace) -> None:
    """``--events`` and ``--histories`` together are an error: one grows the run's users'
    histories, the other gives users their own."""
    if args.events and args.histories is not None:
        raise ValueError("--events grows the run's users' histories; --histories gives users their own: give one of them")


def _events_text(rec, user: str, args: argparse.Namespace) -> str | None:
    """With ``--events``, the text that described a known user in the run's data, which their
    grown history is read with (a history alone carries none); None otherwise."""
    from .serve.live import known_user_text

    return known_user_text(rec, user) if args.events else None


def _asked_users(args: argparse.Namespace, rec) -> list[str]:
    """``--all-users``: every user of the run, in its order; ``--users``: the file's."""
    return rec.users_["user_id"].astype(str).tolist() if args.all_users else _known_user_lines(args.users, rec)


def _known_user_lines(path: str, rec) -> list[str]:
    """The user ids of a text file, one a non-blank line, each checked against the run
    before any scoring, an unknown one an error naming its line."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file of user ids")
    users = []
    for line, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not (user := text.strip()):
            continue
        try:
            rec.user_index(user)
        except KeyError:
            raise KeyError(f"{path}, line {line}: unknown user '{user}' (not in the run's data)") from None
        users.append(user)
    return users


def predict(args: argparse.Namespace) -> None:
    from .data.io import read_table
    from .run_loader import load_run as load

    _events_or_histories(args)
    out = _table_path(args.out, "predictions")
    table = read_table(args.pairs, [args.user_column, args.item_column])
    users = table.required_strings(args.user_column, "user id").tolist()
    items = table.required_strings(args.item_column, "item id").tolist()
    rec = load(args.run)
    if args.events:
        histories = _grown_histories(rec, args, list(dict.fromkeys(users)), "predict_history")
    else:
        histories = {} if args.histories is None else _histories(args, rec, "predict_history")
    for column, ids, lookup in ((args.user_column, users, rec.user_index), (args.item_column, items, rec.item_index)):
        for pos, value in enumerate(ids):  # checked before any scoring, each error naming its row
            if column == args.user_column and value in histories:
                continue
            try:
                lookup(value)
            except KeyError as exc:
                hint = "; give their history with --histories, or their events with --events" if column == args.user_column else ""
                raise table.error(f"{exc.args[0]} (not in the run's data{hint})", pos, column) from None
    predictions = _predictions(rec, users, items, histories, {u: _events_text(rec, u, args) for u in histories}, grown=bool(args.events))
    _write_table(predictions, out)
    print(f"wrote {len(predictions)} predictions ({', '.join(c for c in predictions.columns if c not in ('user_id', 'item_id'))}) to {out}")


def _histories(args: argparse.Namespace, rec, answer: str) -> dict[str, tuple[list[str], list[float | None]]]:
    """``--histories``: each user's items and ratings (None where there is none), in file
    order, oldest first; every item checked against the catalogue, an error naming its row.
    ``answer``: the run's method that reads them (``recommend_history``, ``predict_history``,
    ``profile_history`` or ``explain_history``)."""
    from .data.io import parse_numbers, read_table

    if not hasattr(rec, answer):
        raise ValueError(f"{args.run}: this run ({type(rec).__name__}) cannot answer for histories (polyrec's own runs can)")
    table = read_table(args.histories)
    users = table.required_strings(args.user_column, "user id").tolist()
    items = table.required_strings(args.item_column, "item id").tolist()
    ratings: list[float | None] = [None] * len(items)
    if "rating" in table.frame.columns:
        ratings = [None if v != v else float(v) for v in parse_numbers(table, "rating", "rating", missing_ok=True)]  # NaN: none
    histories: dict[str, tuple[list[str], list[float | None]]] = {}
    for pos, (user, item, rating) in enumerate(zip(users, items, ratings)):
        try:
            rec.item_index(item)
        except KeyError as exc:
            raise table.error(f"{exc.args[0]} (not in the run's catalogue)", pos, args.item_column) from None
        mine = histories.setdefault(user, ([], []))
        mine[0].append(item)
        mine[1].append(rating)
    return histories


def _predictions(
    rec, users: list[str], items: list[str], histories: dict[str, tuple[list[str], list[float | None]]],
    texts: dict[str, str | None] | None = None, grown: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Each pair's prediction, in the file's order: a user of ``histories`` from that history
    (``predict_history``, with their text of ``texts`` where given; ``grown``: the histories
    are known users' grown by ``--events``, read as those users), any other as the run knows them."""
    import pandas as pd

    cold: dict[str, list[int]] = {}
    for k, user in enumerate(users):
        if user in histories:
            cold.setdefault(user, []).append(k)
    known = [k for k, user in enumerate(users) if user not in cold]
    rows, parts = list(known), [rec.predict([users[k] for k in known], [items[k] for k in known])]
    for user, mine in cold.items():
        history, ratings = histories[user]
        as_user = user if grown and rec.knows_user(user) else None
        frame = rec.predict_history(history, [items[k] for k in mine], ratings, user_text=(texts or {}).get(user), as_user=as_user)
        parts.append(frame.assign(user_id=user)[["user_id", *frame.columns]])
        rows.extend(mine)
    joined = pd.concat(parts, ignore_index=True)
    joined.index = rows
    return joined.sort_index().reset_index(drop=True)


def profile(args: argparse.Namespace) -> None:
    from .run_loader import load_run as load

    _events_or_histories(args)
    if args.user is not None:
        if args.out is not None:
            raise ValueError("--out writes the profiles of --users, --all-users or --histories; --user prints them")
        if args.top < 1:
            raise ValueError(f"--top must be at least 1, got {args.top}")
        rec = load(args.run)
        grown = _grown_histories(rec, args, [args.user], "profile_history") if args.events else {}
        _print_profile(rec, args.user, args.top, grown.get(args.user), _events_text(rec, args.user, args))
        return
    out = _table_path(args.out, "profiles")
    rec = load(args.run)
    if args.histories is not None:
        table = _profiles_of_histories(rec, _histories(args, rec, "profile_history"), progress=not args.quiet)
    elif args.events:
        user_ids = _asked_users(args, rec)
        table = _profiles_with_events(rec, args, user_ids)
    else:
        user_ids = None if args.all_users else _known_user_lines(args.users, rec)
        table = rec.profiles(user_ids, progress=not args.quiet)
    _write_table(table, out)
    print(f"wrote {len(table)} probabilities for {table['user_id'].nunique()} users to {out}")


def _print_profile(rec, user: str, top: int, history: tuple[list[str], list[float | None]] | None = None,
                   user_text: str | None = None) -> None:  # fmt: skip
    """A known user's attributes (the ``top`` most likely classes of each) and interests; from
    ``history`` (their history grown by ``--events``, read with ``user_text``) where given."""
    try:
        if history is None:
            probabilities = rec.profile(user)
        else:  # a history grown by --events: read as the user where the run knows them
            probabilities = rec.profile_history(*history, user_text=user_text, as_user=user if rec.knows_user(user) else None)
    except ValueError:  # the run learned no profile: its interests alone, where it has them
        if not hasattr(rec, "interests"):
            raise
        probabilities = {}
    for name, p in probabilities.items():
        ranked = sorted(p.items(), key=lambda kv: -kv[1])
        more = ", …" if len(ranked) > top else ""
        print(f"{name}: " + ", ".join(f"{value} {q:.2f}" for value, q in ranked[:top]) + more)
    if history is not None:
        interests = rec.interests_history(*history)
    else:
        interests = rec.interests(user) if hasattr(rec, "interests") else []
    if interests:
        print("interests: " + ", ".join(f"{shortened(name, 40)} {share:.2f}" for name, share in interests))
    elif not probabilities:
        print(f"no attributes or interests for user {user}: the run learned no profile and its items have no categories")


def _profiles_with_events(rec, args: argparse.Namespace, user_ids: list[str]) -> pd.DataFrame:
    """``--events`` with ``--users`` or ``--all-users``: each user with new events profiled
    from their grown history, the others as the run knows them, in ``user_ids``' order."""
    import pandas as pd

    grown = _grown_histories(rec, args, user_ids, "profile_history")
    texts = {u: _events_text(rec, u, args) for u in grown}
    rest = [u for u in user_ids if u not in grown]
    parts = [rec.profiles(rest, progress=not args.quiet)] if rest else []
    if grown:
        parts.append(_profiles_of_histories(rec, grown, progress=not args.quiet, texts=texts, as_users=True))
    order = {u: k for k, u in enumerate(user_ids)}
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values("user_id", key=lambda c: c.map(order), kind="stable", ignore_index=True)


def _profiles_of_histories(
    rec, histories: dict[str, tuple[list[str], list[float | None]]], progress: bool, texts: dict[str, str | None] | None = None,
    as_users: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """``profile_rows`` of each user of ``histories``, profiled from that history alone:
    ``--histories``', or (``as_users``) known users' grown by ``--events``, read as those
    users with their text of ``texts``."""
    import numpy as np
    import pandas as pd

    from .progress import bar
    from .recommender_base import profile_rows

    parts = []
    for user in bar(list(histories), "profiling", progress):
        items, ratings = histories[user]
        p = rec.profile_history(items, ratings, user_text=(texts or {}).get(user), as_user=user if as_users else None)
        parts.append(profile_rows([user], {name: np.array([list(q.values())]) for name, q in p.items()}, {n: list(q) for n, q in p.items()}))
    return pd.concat(parts, ignore_index=True)


def _table_path(out: str | None, what: str) -> Path:
    """``out`` as the path of a .csv or .parquet file to write ``what`` to."""
    if out is None or Path(out).suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out must name a .csv or .parquet file for the {what}, got {out!r}")
    return Path(out)


def _write_table(frame: pd.DataFrame, out: Path) -> None:
    """Write ``frame`` whole or not at all, as CSV or Parquet by ``out``'s suffix."""
    from .atomic import replace_atomically

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        replace_atomically(out, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        replace_atomically(out, lambda tmp: frame.to_parquet(tmp, index=False))


def explain(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .run_loader import load_run as load

    _events_or_histories(args)
    rec = load(args.run)
    if not hasattr(rec, "explain"):
        raise ValueError(f"{args.run}: this run ({type(rec).__name__}) does not explain its scores (polyrec's own runs do)")
    if args.events:
        histories = _grown_histories(rec, args, [args.user], "explain_history")
    elif args.histories is not None:
        histories = _histories(args, rec, "explain_history")
        if args.user not in histories:
            raise KeyError(f"{args.histories}: no history of user '{args.user}'")
    else:
        histories = {}
    if args.user not in histories:  # as the run knows the user (no new events of theirs)
        print(rec.explain(args.user, args.item, args.top, args.occlusion).summary(shortened))
        return
    items, ratings = histories[args.user]
    why = rec.explain_history(items, args.item, ratings, user_text=_events_text(rec, args.user, args), top=args.top, occlusion=args.occlusion)
    print((replace(why, user_id=args.user) if args.events else why).summary(shortened))  # a grown history is still the user's


def fairness(args: argparse.Namespace) -> None:
    from .eval.groups_report import write_groups_report

    path = write_groups_report(args.run, args.out)
    print(f"wrote {path} and {path.with_suffix('.json')}")


def robustness(args: argparse.Namespace) -> None:
    from .eval.robustness_report import write_robustness_report

    path = write_robustness_report(args.run, args.out, progress=not args.quiet)
    print(f"wrote {path} and {path.with_suffix('.json')}")


def export(args: argparse.Namespace) -> None:
    from .export.writer import export_run

    manifest = export_run(args.run, args.out, int8=args.int8, check_users=args.check_users)
    check = manifest["check"]
    print(
        f"wrote {args.out}: {manifest['items']} items, {len(manifest['priors'])} prior(s), "
        f"{'int8' if args.int8 else 'float32'} user encoder; checked on {check['users']} users against the run: "
        f"largest score difference {check['max_abs_difference']:.2g}, top-10 agreement {check['top10_agreement']:.1%}"
    )
    print(f"load it with polyrec.load({str(args.out)!r}) or `polyrec recommend --run {args.out}` (needs onnxruntime, not torch)")


def shortened(text: str, width: int = 100) -> str:
    """One line of at most ``width`` characters: a catalogue's titles and descriptions can
    run to paragraphs (the full text is in the run's items and in the serving API)."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"
