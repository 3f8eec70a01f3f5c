"""Synthetic data: determinism, planted cluster structure, Zipf popularity, oracle ceiling."""
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.data import movielens, synthetic


def _generate(tmp_path, **kwargs):
    spec = synthetic.SyntheticSpec(**{"users": 300, "items": 400, "interactions": 20_000,
                                      "seed": 3, **kwargs})
    meta = synthetic.generate(spec, tmp_path, chunk_size=7_000, progress=False)
    return spec, meta, pd.read_csv(tmp_path / "interactions.csv", dtype={"zip": str})


def test_tables_have_the_movielens_columns_and_sizes(tmp_path):
    _, meta, interactions = _generate(tmp_path)
    assert list(interactions.columns) == list(movielens.INTERACTION_COLUMNS)
    assert len(interactions) == meta["interactions"] == 20_000
    assert len(pd.read_csv(tmp_path / "items.csv")) == 400
    assert len(pd.read_csv(tmp_path / "users.csv")) == 300
    assert interactions["timestamp"].is_monotonic_increasing
    assert json.loads((tmp_path / "synthetic.json").read_text())["clusters"] == 10


def test_same_seed_same_bytes(tmp_path):
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    assert ((tmp_path / "a" / "interactions.csv").read_bytes()
            == (tmp_path / "b" / "interactions.csv").read_bytes())
    _generate(tmp_path / "c", seed=4)
    assert ((tmp_path / "a" / "interactions.csv").read_bytes()
            != (tmp_path / "c" / "interactions.csv").read_bytes())


def test_events_follow_the_planted_clusters():
    spec = synthetic.SyntheticSpec(users=500, items=2_000, interactions=1, seed=1, clusters=8,
                                   affinity=0.8)
    rng = np.random.default_rng(0)
    world = synthetic.build_world(spec, rng)
    users, items = synthetic.sample_events(world, spec, rng, 100_000)
    same = world.item_cluster[items] == world.user_cluster[users]
    # Own-cluster draws (0.8) plus catalogue draws that land in the own cluster (~0.2 / 8).
    assert same.mean() == pytest.approx(0.8 + 0.2 / 8, abs=0.02)


def test_popularity_is_zipf_like():
    spec = synthetic.SyntheticSpec(users=1_000, items=1_000, interactions=1, seed=2, clusters=1,
                                   affinity=0.0)
    rng = np.random.default_rng(0)
    world = synthetic.build_world(spec, rng)
    _, items = synthetic.sample_events(world, spec, rng, 200_000)
    counts = np.bincount(items, minlength=spec.items)
    rank1 = int(np.argmax(world.item_weight))
    rank10 = int(np.argsort(-world.item_weight)[9])
    # Zipf exponent 1: rank 1 is drawn about 10x as often as rank 10.
    assert counts[rank1] / counts[rank10] == pytest.approx(10.0, rel=0.2)


def test_oracle_hit_rate_matches_simulation_and_beats_popularity():
    spec = synthetic.SyntheticSpec(users=400, items=600, interactions=1, seed=5, clusters=6)
    rng = np.random.default_rng(1)
    world = synthetic.build_world(spec, rng)
    users, items = synthetic.sample_events(world, spec, rng, 100_000)
    k = 20
    oracle = synthetic.oracle_hit_rate(world, spec, k)
    # Simulate the oracle: per cluster, the top-k items of P(i | cluster).
    total = world.item_weight.sum()
    hits = 0
    for cluster in range(spec.num_clusters):
        in_cluster = world.item_cluster == cluster
        own_mass = world.item_weight[in_cluster].sum()
        p = (spec.affinity * in_cluster * world.item_weight / own_mass
             + (1 - spec.affinity) * world.item_weight / total)
        top = set(np.argsort(-p)[:k])
        rows = world.user_cluster[users] == cluster
        hits += np.isin(items[rows], list(top)).sum()
    assert hits / len(items) == pytest.approx(oracle, abs=0.01)
    most_popular = set(np.argsort(-world.item_weight)[:k])
    assert np.isin(items, list(most_popular)).mean() < oracle - 0.05


def test_parquet_output_is_written_in_parts(tmp_path):
    spec = synthetic.SyntheticSpec(users=50, items=60, interactions=2_500, seed=0)
    synthetic.generate(spec, tmp_path, "parquet", chunk_size=1_000, progress=False)
    parts = sorted((tmp_path / "interactions").glob("part-*.parquet"))
    assert len(parts) == 3
    assert sum(len(pd.read_parquet(p)) for p in parts) == 2_500


@pytest.mark.parametrize("kwargs, message", [({"users": 0}, "--users"),
                                             ({"affinity": 1.5}, "affinity")])
def test_invalid_spec(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.SyntheticSpec(**{"users": 1, "items": 1, "interactions": 1, **kwargs})
