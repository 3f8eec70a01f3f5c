"""Feature statistics (vocabularies, numeric percentiles and moments), hand-worked."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pyarrow as pa
import pytest
import tensorflow as tf

from components.negative_pool import counting, pool, preprocessing
from components.trainer import towers
from twotower.contract import Contract, FeatureSpec


def _example(**features) -> bytes:
    example = tf.train.Example()
    for name, value in features.items():
        if isinstance(value, float):
            example.features.feature[name].float_list.value.append(value)
        elif isinstance(value, int):
            example.features.feature[name].int64_list.value.append(value)
        else:
            example.features.feature[name].bytes_list.value.append(value.encode())
    return example.SerializeToString()


CONTRACT = Contract((
    FeatureSpec("customer", "user_id", "id"), FeatureSpec("sku", "item_id", "id"),
    FeatureSpec("device", "query", "categorical"),
    FeatureSpec("region", "query", "categorical", prefix=2),
    FeatureSpec("basket", "query", "numeric", dtype="float32", buckets=4),
    FeatureSpec("tags", "candidate", "multi_categorical", separator=";", min_count=2),
    FeatureSpec("name", "candidate", "text", max_tokens=2),
    FeatureSpec("brand", "candidate", "categorical", hash_bins=8),
    FeatureSpec("price", "candidate", "numeric", dtype="int64", buckets=2)))
TRAIN = [_example(customer="c1", sku="a", device="ios", region="NY10", basket=1.0),
         _example(customer="c2", sku="b", device="web", region="NY22", basket=2.0),
         _example(customer="c1", sku="a", device="ios", region="CA90", basket=3.0),
         _example(customer="c3", sku="c", device="ios", basket=4.0)]
CATALOG = [_example(sku="a", tags="x;y", name="Red Apple", brand="b1", price=10),
           _example(sku="b", tags="y", name="red  PEAR", brand="b2", price=20),
           _example(sku="c", tags="z;;y", name="apple pie", brand="b1", price=30)]


def _decoded(role):
    return preprocessing.decoded_features(preprocessing.tower_features(CONTRACT, role))


def test_vocabularies_and_numeric_statistics():
    with TestPipeline() as p:
        train = p | "Train" >> beam.Create([TRAIN[:2], TRAIN[2:]]) | "DecodeTrain" >> (
            counting.Decode(_decoded("query")))  # pylint: disable=no-value-for-parameter
        catalog = p | "Catalog" >> beam.Create([CATALOG]) | "DecodeCatalog" >> (
            counting.Decode(_decoded("candidate")))  # pylint: disable=no-value-for-parameter
        out = preprocessing.build_feature_stats(train, catalog, CONTRACT, pool.vocabulary_lines)
        # device: ios 3, web 1; region cut to 2 characters: NY 2, CA 1 (the row without it
        # adds nothing); tags split on ';' (empty tokens dropped): y 3, x 1, z 1, min_count 2
        # keeps only y; name lower-cased and split on whitespace: apple 2, red 2, pear 1,
        # pie 1, capped at the 2 most frequent; brand is hashed (no vocabulary).
        assert_that(out.vocabularies, equal_to([
            ("device", ["ios\t3", "web\t1"]), ("region", ["NY\t2", "CA\t1"]),
            ("tags", ["y\t3"]), ("name", ["apple\t2", "red\t2"])]), label="Vocabularies")

        def check_numeric(entries):
            (entry,) = entries
            assert sorted(entry) == ["basket", "price"]
            # basket 1..4: mean 2.5, population std sqrt(1.25); quartile cuts 2, 3, 4 of the
            # percentiles of {1, 2, 3, 4} (25th, 50th, 75th: nearest observed values).
            assert entry["basket"]["mean"] == pytest.approx(2.5)
            assert entry["basket"]["std"] == pytest.approx(1.25 ** 0.5)
            assert entry["basket"]["count"] == 4
            assert len(entry["basket"]["boundaries"]) == 3
            assert entry["basket"]["boundaries"] == sorted(entry["basket"]["boundaries"])
            assert entry["price"]["boundaries"] == [20.0]
            assert entry["price"]["mean"] == pytest.approx(20.0)
        assert_that(out.numeric, check_numeric, label="Numeric")


def test_boundaries_drop_duplicate_cuts():
    percentiles = [0.0] * 60 + [5.0] * 41
    assert preprocessing.boundaries(percentiles, 4) == [0.0, 5.0]
    assert preprocessing.boundaries(list(range(101)), 4) == [25.0, 50.0, 75.0]


@pytest.mark.parametrize("feature,values", [
    (FeatureSpec("t", "candidate", "text"), ["Red  Apple", "ÉCLAIR au Chocolat", "", "a\tb\nc"]),
    (FeatureSpec("m", "candidate", "multi_categorical", separator="|"),
     ["Comedy|Drama", "|Drama||", "", "Sci-Fi"]),
    (FeatureSpec("c", "query", "categorical", prefix=2), ["85711", "9", "", "ÅÄÖx"]),
])
def test_beam_tokens_match_the_towers(feature, values):
    """The vocabulary (Arrow) and the tower (TF) must cut values into the same tokens."""
    column = pa.array([[value.encode()] for value in values], type=pa.large_list(pa.large_binary()))
    arrow = [token.decode() for token in preprocessing.tokens(column, feature).to_pylist()]
    tensor = tf.constant(values)
    if feature.kind == "categorical":
        tf_tokens = [t.decode() for t in towers.categorical_value(tensor, feature).numpy()]
    else:
        tf_tokens = [t.decode() for t in towers.split_tokens(tensor, feature).flat_values.numpy()]
    assert arrow == tf_tokens
