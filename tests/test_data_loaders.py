"""Loaders: MovieLens-100K (recbole wheel), the ML-1M .dat format, generic folders, and the
one-line errors every bad input must raise (file, exact row, column)."""

from __future__ import annotations

import importlib.machinery
import re
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyrec.data.attributes import AGE_GROUPS, bucket_age, bucketize_numeric
from polyrec.data.describe import describe
from polyrec.data.errors import DataError
from polyrec.data.generic import item_text, load_generic
from polyrec.data.io import read_table
from polyrec.data.loader import BUILTIN_DATASETS, load_dataset
from polyrec.data.movielens import load_ml100k, load_movielens_dat, movie_text
from synthetic import synthetic_dataset

FULL_YAML = """\
name: my-shop
interactions: {path: interactions.csv, user: user_id, item: item_id, rating: rating, timestamp: ts, label: clicked}
items: {path: items.csv, id: item_id, text: [title, categories, brand], type: item_type}
users: {path: users.csv, id: user_id, attributes: [gender, age, occupation]}
"""
INTERACTIONS = """\
user_id,item_id,rating,ts,clicked
u1,i1,4,2021-03-04T10:00:00Z,yes
u1,i2,3.5,2021-03-05,0
u2,i1,5,2021-03-06 12:00:00,TRUE
u3,i3,1,2021-03-07T01:00:00+01:00,no
"""
ITEMS = """\
item_id,title,categories,brand,item_type
i1,Blue kettle,"Kitchen, Home",Acme,product
i2,Red mug,,,product
i3,Summer sale,,,ad
i4,Unsold lamp,Lighting,Lumo,product
"""
USERS = """\
user_id,gender,age,occupation
u1,F,17,student
u2,M,30,
u3,F,61,retired
u4,M,40,lawyer
"""


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def generic_folder(tmp_path: Path, **overrides: str | bytes | None) -> Path:
    """The full generic example; ``overrides`` replace (or, with None, remove) files."""
    files: dict[str, str | bytes | None] = {
        "dataset.yaml": FULL_YAML, "interactions.csv": INTERACTIONS, "items.csv": ITEMS, "users.csv": USERS,
    }  # fmt: skip
    files.update({name.replace("_csv", ".csv").replace("_yaml", ".yaml"): v for name, v in overrides.items()})
    return write(tmp_path / "shop", {k: v for k, v in files.items() if v is not None})


def check_error(info: pytest.ExceptionInfo[DataError], file: str, row: int | None, column: str | None) -> str:
    """The message is one line naming the file, the exact row and the column."""
    message = str(info.value)
    assert "\n" not in message
    assert file in message and Path(info.value.file).name == file
    assert info.value.row == row
    assert info.value.column == column
    if row is not None:
        assert f"row {row}," in message or f"row {row}:" in message
    if column is not None:
        assert f"column '{column}'" in message
    return message


# ---------------------------------------------------------------- MovieLens-100K


@pytest.fixture(scope="module")
def ml100k():
    return load_ml100k()


def test_ml100k_counts_and_types(ml100k) -> None:
    assert (ml100k.n_users, ml100k.n_items, len(ml100k.interactions)) == (943, 1682, 100_000)
    assert ml100k.name == "ml-100k"
    assert ml100k.attributes == ["gender", "age", "occupation"]
    assert "zip_code" not in ml100k.users.columns
    assert ml100k.text_columns == ["title", "year", "genres"]
    assert ml100k.text_fields == []  # one short composed sentence: encoded whole
    inter = ml100k.interactions
    assert inter["rating"].dtype == np.float64 and inter["timestamp"].dtype == np.float64
    assert inter["user"].dtype == np.int64 and inter["item"].dtype == np.int64
    assert ml100k.rating_range == (1.0, 5.0)


def test_ml100k_keeps_file_order_and_builds_text(ml100k) -> None:
    # First line of ml-100k.inter: 196 242 3 881250949
    first = ml100k.interactions.iloc[0]
    assert ml100k.users["user_id"].iloc[int(first["user"])] == "196"
    assert ml100k.items["item_id"].iloc[int(first["item"])] == "242"
    assert (first["rating"], first["timestamp"]) == (3.0, 881250949.0)
    assert ml100k.items["text"].iloc[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    # RecBole's "unkonwn" placeholder for item 267 is a missing title, not a movie name.
    row = ml100k.items.set_index("item_id").loc["267"]
    assert pd.isna(row["title"]) and row["text"] == "Genres: unknown."


def test_ml100k_age_groups_are_the_ml1m_labels(ml100k) -> None:
    assert set(ml100k.users["age"]) == set(AGE_GROUPS)
    user1 = ml100k.users.set_index("user_id").loc["1"]  # 1|24|M|technician
    assert (user1["age"], user1["gender"], user1["occupation"]) == ("18-24", "M", "technician")
    assert ml100k.attribute_codes("gender")[1] == ["F", "M"]


def test_ml100k_without_recbole_says_how_to_install(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "recbole" else real(name, *a))
    with pytest.raises(DataError, match=r"ml-100k.*pip install --no-deps recbole"):
        load_ml100k()


def test_ml100k_missing_file_names_its_path(monkeypatch, tmp_path) -> None:
    fake = write(tmp_path / "recbole" / "dataset_example" / "ml-100k", {"ml-100k.inter": "user_id:token\n1\n"})
    spec = importlib.machinery.ModuleSpec("recbole", None, is_package=True)
    spec.submodule_search_locations = [str(fake.parent.parent)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "recbole" else real(name, *a))
    with pytest.raises(DataError) as info:
        load_ml100k()
    assert "ml-100k.user" in str(info.value) and "pip install --no-deps recbole" in str(info.value)


# ---------------------------------------------------------------- ML-1M .dat format


def ml1m_folder(tmp_path: Path, **overrides: bytes) -> Path:
    files = {
        "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
        "movies.dat": "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "73::Misérables, Les (1995)::Drama|Musical\n"
        "5::Unrated Film (1999)::Drama\n".encode("latin-1"),
        "ratings.dat": b"1::1::5::978300760\n1::73::3::978302109\n2::1::4::978301968\n3::73::2::978300275\n",
    }
    files.update({k.replace("_dat", ".dat"): v for k, v in overrides.items()})
    return write(tmp_path / "ml-tiny", files)


def test_ml1m_dat_loads_latin1_titles_codes_and_drops_unrated_movies(tmp_path) -> None:
    ds = load_movielens_dat(ml1m_folder(tmp_path))
    assert ds.name == "ml-tiny"
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 2, 4)
    les = ds.items.set_index("item_id").loc["73"]
    assert (les["title"], les["year"], les["genres"]) == ("Misérables, Les", "1995", "Drama, Musical")
    assert les["text"] == "Misérables, Les (1995). Genres: Drama, Musical."
    users = ds.users.set_index("user_id")
    assert users.loc["1", "age"] == "<18" and users.loc["2", "age"] == "56+" and users.loc["3", "age"] == "25-34"
    assert users.loc["1", "occupation"] == "K-12 student" and users.loc["2", "occupation"] == "self-employed"
    assert ds.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 2.0]
    assert "1 items in movies.dat have no interactions: dropped" in ds.notes


def test_movielens_csv_releases_load_quoted_titles_genres_and_drop_unrated_movies(tmp_path) -> None:
    """ML-20M, ML-25M and ml-latest(-small) as they unzip: ratings.csv + movies.csv."""
    from polyrec.data.movielens import load_movielens_csv

    folder = write(tmp_path / "ml-latest-small", {
        "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n2,11,5.0,1445714835\n",
        "movies.csv": 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                      '11,"American President, The (1995)",Comedy|Drama|Romance\n99,Unrated (2001),(no genres listed)\n',
        "tags.csv": "userId,movieId,tag,timestamp\n1,1,pixar,1\n",
    })  # fmt: skip
    for ds in (load_movielens_csv(folder), load_dataset(None, folder)):
        assert ds.name == "ml-latest-small" and (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 2, 3)
        assert ds.items["text"].tolist() == [
            "Toy Story (1995). Genres: Adventure, Animation.",
            "American President, The (1995). Genres: Comedy, Drama, Romance.",
        ]
        assert ds.interactions["rating"].tolist() == [4.0, 3.5, 5.0] and ds.has_timestamp
        assert ds.attributes == [] and "1 items in movies.csv have no interactions: dropped" in ds.notes
    no_genres = write(tmp_path / "g", {
        "ratings.csv": "userId,movieId,rating,timestamp\n1,99,2.0,1\n",
        "movies.csv": "movieId,title,genres\n99,Unrated (2001),(no genres listed)\n",
    })  # fmt: skip
    assert load_movielens_csv(no_genres).items["text"].tolist() == ["Unrated (2001)."]
    bad = write(tmp_path / "bad", {"ratings.csv": "userId,movieId,stars,timestamp\n1,1,4,1\n", "movies.csv": "movieId,title,genres\n1,A,B\n"})
    with pytest.raises(DataError) as info:
        load_movielens_csv(bad)
    assert "column not found" in check_error(info, "ratings.csv", 1, "rating")


def test_the_ml1m_shaped_synthetic_writer_writes_what_the_dat_loader_reads(tmp_path, monkeypatch) -> None:
    # benchmarks/synthetic_ml1m.py feeds the scale measurements in the README.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import synthetic_ml1m

    n = synthetic_ml1m.write(tmp_path / "syn", users=40, items=60, seed=1)
    ds = load_dataset(data=tmp_path / "syn")
    assert (ds.n_users, len(ds.interactions)) == (40, n)
    assert ds.interactions.groupby("user").size().min() >= 20  # MovieLens-1M's floor per user
    assert set(ds.interactions["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert set(ds.users["gender"]) == {"F", "M"} and ds.users["age"].isin(AGE_GROUPS).all()


@pytest.mark.parametrize(
    ("file", "content", "row", "column", "text"),
    [
        ("ratings_dat", b"1::1::5::978300760\n1::73::3\n", 2, "timestamp", "missing timestamp"),
        ("ratings_dat", b"1::1::5::978300760\n\n1::999::3::978302109\n",
         3, "item_id", "item id '999' is not in movies.dat"),
        ("ratings_dat", b"1::1::5::978300760\n2::1::five::978301968\n", 2, "rating", "'five'"),
        ("users_dat", b"1::F::1::10::48067\n2::M::56::42::70072\n",
         2, "occupation", "unknown occupation code '42'"),
        ("movies_dat", b"1::Toy Story (1995)::Comedy\n73::Les (1995)::Drama\n1::Again (1995)::Drama\n",
         3, "item_id", "duplicate movie id '1' (first on row 1)"),
        ("users_dat", b"1::F::1::10::48067::extra\n", 1, None, "6 fields"),
    ],
)  # fmt: skip
def test_ml1m_bad_input(tmp_path, file, content, row, column, text) -> None:
    folder = ml1m_folder(tmp_path, **{file: content})
    with pytest.raises(DataError) as info:
        load_movielens_dat(folder)
    assert text in check_error(info, file.replace("_dat", ".dat"), row, column)


# ---------------------------------------------------------------- generic folders


def test_generic_full_yaml(tmp_path) -> None:
    ds = load_generic(generic_folder(tmp_path))
    assert ds.name == "my-shop"
    assert ds.users["user_id"].tolist() == ["u1", "u2", "u3"]  # u4 never interacts
    assert ds.items["item_id"].tolist() == ["i1", "i2", "i3", "i4"]
    inter = ds.interactions
    assert inter["user"].tolist() == [0, 0, 1, 2] and inter["item"].tolist() == [0, 1, 0, 2]
    assert inter["rating"].tolist() == [4.0, 3.5, 5.0, 1.0]
    assert inter["label"].tolist() == [1.0, 0.0, 1.0, 0.0]
    # ISO strings, naive ones read as UTC: 2021-03-04T10:00Z, 03-05, 03-06 12:00, 03-07T01:00+01:00
    assert inter["timestamp"].tolist() == [1614852000.0, 1614902400.0, 1615032000.0, 1615075200.0]
    assert ds.users["age"].tolist() == ["<18", "25-34", "56+"]
    assert pd.isna(ds.users["occupation"].iloc[1])
    assert ds.items["text"].tolist() == [
        "title: Blue kettle. categories: Kitchen, Home. brand: Acme",
        "title: Red mug",
        "title: Summer sale",
        "title: Unsold lamp. categories: Lighting. brand: Lumo",
    ]
    assert ds.text_fields == ["title", "categories", "brand"]  # several: each may be encoded apart
    assert ds.items["item_type"].tolist() == ["product", "product", "ad", "product"]
    assert "1 users in users.csv have no interactions: dropped (no history to learn from)" in ds.notes
    assert "1 items in items.csv have no interactions: kept" in ds.notes


def test_generic_interactions_only_notes(tmp_path) -> None:
    folder = write(tmp_path / "clicks", {
        "dataset.yaml": "interactions: {path: events.tsv, user: uid, item: sku}\n",
        "events.tsv": "uid\tsku\nb\tx9\na\tx1\nb\tx1\nb\tx9\n",
    })  # fmt: skip
    ds = load_generic(folder)
    assert ds.name == "clicks"
    assert ds.users["user_id"].tolist() == ["b", "a"]  # order of first appearance
    assert ds.items["text"].tolist() == ["x9", "x1"]  # no items file: the id is the text
    assert list(ds.interactions.columns) == ["user", "item"] and ds.attributes == []
    assert ds.notes == [
        "no rating column: task 'rating' is off",
        "no timestamp column: protocol B orders each user's interactions by file order",
        "no users file: task 'profile' is off",
        "no items file: items come from the interactions and each item's text is its id",
        "1 interactions repeat an earlier (user, item) pair: kept",
    ]


def test_generic_parquet_with_native_types(tmp_path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({
        "user": [10, 11, 10], "item": [7, 7, 8], "when": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
        "clicked": [True, False, True],
    }).to_parquet(folder / "inter.parquet")  # fmt: skip
    (folder / "dataset.yaml").write_text(
        "interactions: {path: inter.parquet, user: user, item: item, timestamp: when, label: clicked}\n"
    )
    ds = load_generic(folder)
    assert ds.users["user_id"].tolist() == ["10", "11"] and ds.items["item_id"].tolist() == ["7", "8"]
    assert ds.interactions["timestamp"].tolist() == [1577836800.0, 1577923200.0, 1578009600.0]
    assert ds.interactions["label"].tolist() == [1.0, 0.0, 1.0]


def test_generic_ids_missing_from_the_users_and_items_files_are_kept_and_counted(tmp_path) -> None:
    # A users file often covers only the users who gave their attributes; a catalogue export
    # can lag the behaviour log.
    inter = INTERACTIONS.replace("u3,i3", "u7,i77") + "u7,i1,2,2021-03-08,no\n"
    ds = load_generic(generic_folder(tmp_path, interactions_csv=inter))
    assert ds.users["user_id"].tolist() == ["u1", "u2", "u7"]  # u3 and u4 never interact
    assert ds.users.loc[2, ["gender", "age", "occupation"]].isna().all()
    assert ds.items["item_id"].tolist() == ["i1", "i2", "i3", "i4", "i77"]
    assert ds.items["text"].iloc[-1] == "i77"  # no text: the id, as for any item without text
    assert ds.interactions["user"].tolist() == [0, 0, 1, 2, 2]
    assert ds.interactions["item"].tolist() == [0, 1, 0, 4, 0]
    assert "1 users are not in users.csv: kept, attributes unknown (the first: 'u7')" in ds.notes
    assert "1 items are not in items.csv: kept, without text (the first: 'i77')" in ds.notes


def test_generic_attributes_with_fewer_than_two_values_are_left_out(tmp_path) -> None:
    users = "user_id,gender,age,occupation,plan,score\nu1,F,17,student,basic,\nu2,M,30,,basic,\nu3,F,61,retired,,\n"
    yaml_text = FULL_YAML.replace("[gender, age, occupation]", "[gender, age, occupation, plan, score]")
    ds = load_generic(generic_folder(tmp_path, users_csv=users, dataset_yaml=yaml_text))
    assert ds.attributes == ["gender", "age", "occupation"]
    assert list(ds.users.columns) == ["user_id", "gender", "age", "occupation"]
    assert "attribute 'plan' has a single value, 'basic': left out" in ds.notes
    assert "attribute 'score' has no value: left out" in ds.notes
    only = "user_id,plan\nu1,basic\nu2,basic\nu3,basic\n"
    yaml_text = FULL_YAML.replace("[gender, age, occupation]", "[plan]")
    ds = load_generic(generic_folder(tmp_path / "only", users_csv=only, dataset_yaml=yaml_text))
    assert ds.attributes == [] and "users file has no attribute columns: task 'profile' is off" in ds.notes


def test_generic_users_without_attributes_turn_profile_off(tmp_path) -> None:
    folder = generic_folder(tmp_path, dataset_yaml=FULL_YAML.replace(", attributes: [gender, age, occupation]", ""))
    ds = load_generic(folder)
    assert ds.attributes == [] and "users file has no attribute columns: task 'profile' is off" in ds.notes


# ---------------------------------------------------------------- generic bad input


BAD_GENERIC = [
    # (override files, file named, row, column, text in message)
    ({"interactions_csv": INTERACTIONS.replace("u1,i2,3.5", "u1,i2,abc")},
      "interactions.csv", 3, "rating", "cannot read rating 'abc'"),
    ({"interactions_csv": INTERACTIONS.replace("2021-03-06 12:00:00", "yesterday")},
      "interactions.csv", 4, "ts", "'yesterday'"),
    ({"interactions_csv": INTERACTIONS.replace("1,2021-03-07T01:00:00+01:00,no", "1,2021-03-07,maybe")},
      "interactions.csv", 5, "clicked", "'maybe'"),
    ({"interactions_csv": INTERACTIONS.replace("u2,i1,5", ",i1,5")},
      "interactions.csv", 4, "user_id", "missing user id"),
    ({"interactions_csv": INTERACTIONS.replace("u1,i2,", "u1,  ,")},
      "interactions.csv", 3, "item_id", "missing item id"),
    ({"interactions_csv": INTERACTIONS.replace("u1,", "u8,").replace("u2,", "u9,")},
      "interactions.csv", 2, "user_id", "user id 'u8' is not in users.csv (2 of the 3 user ids in the "
      "interactions are not): is 'user_id' the right column, and the file the right one?"),
    ({"interactions_csv": INTERACTIONS.replace("rating,", "score,")},
      "interactions.csv", 1, "rating", "available columns: user_id, item_id, score, ts, clicked"),
    ({"interactions_csv": "user_id,item_id,rating,ts,clicked\n"},
      "interactions.csv", 2, None, "no data rows"),
    ({"interactions_csv": ""}, "interactions.csv", 1, None, "the file is empty"),
    ({"interactions_csv": INTERACTIONS.replace("u1,i2,3.5,2021-03-05,0", "u1,i2,3.5,2021-03-05,0,extra")},
      "interactions.csv", 3, None, "6 fields, but the header has 5"),
    ({"users_csv": USERS + "u2,F,22,artist\n"},
      "users.csv", 6, "user_id", "duplicate user id 'u2' (first on row 3)"),
    ({"items_csv": ITEMS.replace("i3,Summer", "i1,Summer")},
      "items.csv", 4, "item_id", "duplicate item id 'i1' (first on row 2)"),
    ({"items_csv": ITEMS.encode().replace(b"Red mug", b"Caf\xe9 mug")},
      "items.csv", 3, "title", "not valid utf-8"),
    ({"users_csv": USERS.replace("occupation", "job")}, "users.csv", 1, "occupation", "column not found"),
    ({"items_csv": None}, "items.csv", None, None, "file not found"),
    ({"dataset_yaml": None}, "dataset.yaml", None, None, "file not found"),
    ({"dataset_yaml": FULL_YAML.replace("item: item_id, ", "")},
      "dataset.yaml", 2, "interactions.item", "missing required key 'item'"),
    ({"dataset_yaml": FULL_YAML.replace("timestamp: ts", "timestmap: ts")},
      "dataset.yaml", 2, "interactions.timestmap", "unknown key"),
    ({"dataset_yaml": FULL_YAML.replace("text: [title, categories, brand]", "text: [title, {a: b}]")},
      "dataset.yaml", 3, "items.text", "expected a column name"),
    ({"dataset_yaml": "name: x\nusers: {path: users.csv}\n"},
      "dataset.yaml", None, "interactions", "missing required key"),
    ({"dataset_yaml": "name: x\ninteractions: {path: a.csv, user: [\n"}, "dataset.yaml", 3, None, "not valid YAML"),
     
]  # fmt: skip


@pytest.mark.parametrize(("files", "file", "row", "column", "text"), BAD_GENERIC)
def test_generic_bad_input(tmp_path, files, file, row, column, text) -> None:
    folder = generic_folder(tmp_path, **files)
    with pytest.raises(DataError) as info:
        load_generic(folder)
    assert text in check_error(info, file, row, column)


def test_generic_ratings_with_gaps_load_as_nan_and_are_counted(tmp_path) -> None:
    """Views and clicks beside the odd rating: an empty rating is no rating, not an error."""
    inter = INTERACTIONS.replace("u1,i2,3.5,", "u1,i2,,").replace("u3,i3,1,", "u3,i3, ,")
    ds = load_generic(generic_folder(tmp_path, interactions_csv=inter))
    np.testing.assert_array_equal(ds.interactions["rating"], [4.0, np.nan, 5.0, np.nan])
    assert ds.rating_range == (4.0, 5.0) and ds.ctr_threshold(None) == 4.75
    assert "2 of 4 interactions have no rating (50%): they are history and next-item targets; rating learns from the rated ones" in ds.notes
    text = describe(ds)
    assert "Ratings (min 4, max 5, mean 4.50):" in text and re.search(r"^ +\(none\) +2 +50\.0%", text, re.M)


def test_generic_ratings_with_gaps_and_no_label_column_give_ctr_no_label_there(tmp_path) -> None:
    from polyrec.train.protocol_data import rated_values
    from polyrec.train.sequences import ctr_labels

    inter = "user_id,item_id,rating\nu1,i1,5\nu1,i2,\nu2,i1,2\n"
    yaml_text = "interactions: {path: interactions.csv, user: user_id, item: item_id, rating: rating}\n"
    ds = load_generic(write(tmp_path / "mixed", {"dataset.yaml": yaml_text, "interactions.csv": inter}))
    np.testing.assert_array_equal(ctr_labels(ds, 4.0), [1.0, np.nan, 0.0])
    assert any("rating and ctr learn from the rated ones" in n for n in ds.notes)
    np.testing.assert_array_equal(rated_values(ds, np.array([0, 1])), [5.0])  # what the mean and levels read


def test_generic_labels_with_gaps_load_as_nan_and_ctr_reads_only_the_label_column(tmp_path) -> None:
    from polyrec.train.sequences import ctr_labels

    inter = INTERACTIONS.replace("2021-03-05,0", "2021-03-05,").replace("5,2021-03-06 12:00:00,TRUE", "5,2021-03-06 12:00:00, ")
    ds = load_generic(generic_folder(tmp_path, interactions_csv=inter))
    np.testing.assert_array_equal(ds.interactions["label"], [1.0, np.nan, np.nan, 0.0])
    np.testing.assert_array_equal(ctr_labels(ds, None), [1.0, np.nan, np.nan, 0.0])  # a 5-star rating stands in for none
    assert "2 of 4 interactions have no label (50%): they are history and next-item targets; ctr learns from the labelled ones" in ds.notes
    assert "Labels: 50.0% positive (1 of 2; 2 without a label)" in describe(ds)


def test_generic_rating_column_without_any_value_is_an_error(tmp_path) -> None:
    inter = "user_id,item_id,rating\nu1,i1,\nu2,i1,\n"
    yaml_text = "interactions: {path: interactions.csv, user: user_id, item: item_id, rating: rating}\n"
    with pytest.raises(DataError) as info:
        load_generic(write(tmp_path / "empty", {"dataset.yaml": yaml_text, "interactions.csv": inter}))
    assert "no interaction has a rating" in check_error(info, "interactions.csv", None, "rating")
    yaml_text = "interactions: {path: interactions.csv, user: user_id, item: item_id, label: clicked}\n"
    with pytest.raises(DataError) as info:
        load_generic(write(tmp_path / "no-labels", {"dataset.yaml": yaml_text, "interactions.csv": "user_id,item_id,clicked\nu1,i1,\n"}))
    assert "no interaction has a label" in check_error(info, "interactions.csv", None, "clicked")


def test_rows_count_lines_across_quoted_newlines_and_blank_lines(tmp_path) -> None:
    items = 'item_id,title,categories,brand,item_type\ni1,"Blue\nkettle",x,y,p\n\ni2,Mug,,,p\ni1,Again,,,p\n'
    folder = generic_folder(tmp_path, items_csv=items)
    with pytest.raises(DataError) as info:
        load_generic(folder)
    # header=1, i1 spans lines 2-3, line 4 blank, i2=5, the duplicate i1 starts on line 6
    check_error(info, "items.csv", 6, "item_id")
    assert "first on row 2" in str(info.value)


def test_parquet_rows_are_numbered_as_in_csv(tmp_path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({"u": ["a", "b", "c"], "i": ["x", None, "z"], "r": [1.0, 2.0, 3.0]}).to_parquet(folder / "r.parquet")
    (folder / "dataset.yaml").write_text("interactions: {path: r.parquet, user: u, item: i, rating: r}\n")
    with pytest.raises(DataError) as info:
        load_generic(folder)
    assert "missing item id" in check_error(info, "r.parquet", 3, "i")


def test_parquet_reads_only_the_columns_the_dataset_names(tmp_path) -> None:
    wide = pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "r": [1.0, 2.0], **{f"unused{k}": [0.5, 0.25] for k in range(5)}})
    wide.to_parquet(tmp_path / "wide.parquet")
    table = read_table(tmp_path / "wide.parquet", {"u", "i", "r"})
    assert list(table.frame.columns) == ["u", "i", "r"]
    with pytest.raises(DataError) as info:
        table.column("rating")
    assert "available columns: u, i, r, unused0" in check_error(info, "wide.parquet", 1, "rating")  # the unread ones too
    (tmp_path / "dataset.yaml").write_text("interactions: {path: wide.parquet, user: u, item: i, rating: r}\n")
    assert load_generic(tmp_path).interactions["rating"].tolist() == [1.0, 2.0]


def _write_shards(folder: Path, parts: dict[str, pd.DataFrame]) -> Path:
    """``parts``: path under ``folder/inter`` → its rows, written as Parquet shards."""
    for name, frame in parts.items():
        (folder / "inter" / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / "inter" / name)
    (folder / "dataset.yaml").write_text("interactions: {path: inter, user: u, item: i, rating: r, timestamp: day}\n")
    return folder


def test_a_folder_of_parquet_shards_reads_as_one_table_with_hive_partitions(tmp_path) -> None:
    rows = pd.DataFrame({"u": list("abcab"), "i": list("xyzzx"), "r": [1.0, 2.0, 3.0, 4.0, 5.0]})
    folder = _write_shards(tmp_path / "shards", {
        "day=2/part-0.parquet": rows.iloc[3:], "day=1/part-1.parquet": rows.iloc[1:3], "day=1/part-0.parquet": rows.iloc[:1],
    })  # fmt: skip
    ds = load_generic(folder)
    inter = ds.interactions
    assert inter["rating"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # sorted path order: day=1/part-0, part-1, day=2
    assert inter["timestamp"].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]  # the partition column
    assert ds.users["user_id"].tolist() == ["a", "b", "c"]


def test_an_error_in_a_shard_names_that_shard_and_its_own_row(tmp_path) -> None:
    good = pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "r": [1.0, 2.0]})
    bad = pd.DataFrame({"u": ["a", "b", "c"], "i": ["x", "y", None], "r": [1.0, 2.0, 3.0]})
    folder = _write_shards(tmp_path / "shards", {"day=1/a.parquet": good, "day=2/b.parquet": bad})
    with pytest.raises(DataError) as info:
        load_generic(folder)
    assert "missing item id" in check_error(info, "b.parquet", 4, "i") and "day=2" in info.value.file


def test_shards_must_share_their_columns_and_a_folder_must_hold_some(tmp_path) -> None:
    one = pd.DataFrame({"u": ["a"], "i": ["x"], "r": [1.0]})
    other = one.rename(columns={"r": "rating"})
    folder = _write_shards(tmp_path / "mixed", {"day=1/a.parquet": one, "day=2/b.parquet": other})
    with pytest.raises(DataError) as info:
        load_generic(folder)
    assert "differ from" in check_error(info, "b.parquet", None, None)
    empty = tmp_path / "empty"
    (empty / "inter").mkdir(parents=True)
    (empty / "dataset.yaml").write_text("interactions: {path: inter, user: u, item: i}\n")
    with pytest.raises(DataError, match="must hold .parquet files; it holds none"):
        load_generic(empty)


# ---------------------------------------------------------------- load_dataset


def test_load_dataset_detects_each_format(tmp_path, ml100k) -> None:
    assert load_dataset(data=generic_folder(tmp_path)).name == "my-shop"
    assert load_dataset(data=generic_folder(tmp_path) / "dataset.yaml").name == "my-shop"
    ml = load_dataset(data=ml1m_folder(tmp_path))
    assert ml.name == "ml-tiny" and ml.n_items == 2
    default = load_dataset()
    assert (default.name, default.n_users) == ("ml-100k", 943)
    assert load_dataset("ml-100k").n_items == 1682
    assert BUILTIN_DATASETS == ("ml-100k",)


def test_load_dataset_rejects_unknown_inputs(tmp_path) -> None:
    other = write(tmp_path / "other", {"ratings.csv": "a,b\n1,2\n"})
    expected = r"expected dataset.yaml .* ratings.dat \+ movies.dat.*found: ratings.csv"
    with pytest.raises(DataError, match=expected):
        load_dataset(data=other)
    with pytest.raises(DataError, match="data folder not found"):
        load_dataset(data=tmp_path / "nowhere")
    with pytest.raises(DataError, match="unknown built-in dataset"):
        load_dataset("ml-1m")
    with pytest.raises(DataError, match="not both"):
        load_dataset("ml-100k", data=other)


# ---------------------------------------------------------------- attributes, text, describe


def test_age_buckets_for_years_and_ml1m_codes() -> None:
    years = bucket_age([5, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 90])
    assert years.tolist() == [
        "<18", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44",
        "45-49", "45-49", "50-55", "50-55", "56+", "56+",
    ]  # fmt: skip
    assert bucket_age([1, 18, 25, 35, 45, 50, 56]).tolist() == list(AGE_GROUPS)


def test_bucketize_numeric_rule() -> None:
    income = pd.Series([str(v) for v in range(100, 200)])
    buckets = bucketize_numeric(income, "income")
    assert buckets.nunique() == 5 and buckets.iloc[0] == "[100, 119.8]" and buckets.iloc[-1] == "(179.2, 199]"
    assert bucketize_numeric(pd.Series(["1", "2", "1", None]), "segment").tolist()[:3] == ["1", "2", "1"]
    assert bucketize_numeric(pd.Series(["30", "unknown"]), "age").tolist() == ["30", "unknown"]
    assert bucketize_numeric(pd.Series([30, 61]), "user_age").tolist() == ["25-34", "56+"]
    assert bucketize_numeric(pd.Series([str(v) for v in range(20)]), "page").nunique() == 5  # not an age


def test_item_text_forms() -> None:
    assert item_text({"title": "Kettle"}, ["title"]) == "Kettle"
    row = {"title": "Kettle", "brand": None, "main_cat": "Home"}
    assert item_text(row, ["title", "brand", "main_cat"]) == "title: Kettle. main cat: Home"
    assert movie_text({"title": "Heat", "year": pd.NA, "genres": "Action"}) == "Heat. Genres: Action."


def test_describe_reports_counts_histogram_labels_and_notes(tmp_path) -> None:
    text = describe(load_generic(generic_folder(tmp_path)))
    assert re.search(r"^  users +3$", text, re.M) and re.search(r"^  interactions +4$", text, re.M)
    assert re.search(r"^  sparsity +66\.67%$", text, re.M)  # 1 - 4 / (3 * 4)
    assert "interactions per user: min 1 · median 1 · max 2" in text
    assert re.search(r"^ +3\.5 +1 +25\.0%  #{30}$", text, re.M)  # one rating of 3.5 among 4
    assert "Labels: 50.0% positive (2 of 4)" in text
    assert "Timestamps: 1614852000 to 1615075200 (2021-03-04 10:00 to 2021-03-07 00:00 UTC" in text
    lines = text.splitlines()
    age = lines.index("Attribute 'age' (3 classes):")
    assert [line.split()[0] for line in lines[age + 1 : age + 4]] == ["<18", "25-34", "56+"]
    assert "  - no rating column" not in text and "  - 1 items in items.csv have no interactions: kept" in text
    assert "product" in text and "ad" in text


@pytest.mark.parametrize(
    ("scale", "threshold", "positive"),
    [
        ((1, 2, 3, 4, 5), 4.0, (4, 5)),  # MovieLens: 4 of 5 stars
        ((0.5, 1, 2.5, 3.5, 4, 4.5, 5), 3.875, (4, 4.5, 5)),  # half stars: 4 and up, as there
        ((2, 4, 6, 8, 10), 8.0, (8, 10)),  # a 10-point scale: where a fixed 4 took 98 %
        ((1, 3, 7, 8, 10), 7.75, (8, 10)),
    ],
)
def test_ctr_threshold_sits_three_quarters_up_the_rating_scale(scale, threshold, positive) -> None:
    from polyrec.train.sequences import ctr_labels

    ds = synthetic_dataset()
    ds.interactions["rating"] = np.resize(np.asarray(scale, dtype=np.float64), len(ds.interactions))
    assert ds.ctr_threshold(None) == threshold
    assert ds.ctr_threshold(2.0) == 2.0  # a configured threshold wins
    labels = ctr_labels(ds, None)
    assert set(ds.interactions["rating"][labels == 1]) == set(positive)
    assert synthetic_dataset(ratings=False).ctr_threshold(None) is None


def test_exact_copies_of_an_interaction_are_counted_apart_from_repeats(tmp_path) -> None:
    (tmp_path / "inter.csv").write_text("u,i,ts\na,x,1\na,x,5\na,x,5\nb,y,2\nb,z,2\n")
    (tmp_path / "dataset.yaml").write_text("interactions: {path: inter.csv, user: u, item: i, timestamp: ts}\n")
    notes = load_generic(tmp_path).notes
    assert "2 interactions repeat an earlier (user, item) pair: kept" in notes
    assert any(n.startswith("1 of them copy an earlier interaction exactly, time included") for n in notes)
    (tmp_path / "inter.csv").write_text("u,i,ts\na,x,1\na,x,5\nb,y,2\n")  # a second purchase, later
    assert not any("copy an earlier" in n for n in load_generic(tmp_path).notes)
