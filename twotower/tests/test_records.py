"""Whole-column reads of gzipped tf.Example files."""
import numpy as np
import pytest
import tensorflow as tf

from twotower import records


def _write(path, rows):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for item_id, count, vector in rows:
            example = tf.train.Example()
            example.features.feature["item_id"].bytes_list.value.append(item_id)
            example.features.feature["count"].int64_list.value.append(count)
            example.features.feature["vector"].float_list.value.extend(vector)
            writer.write(example.SerializeToString())


SPEC = {"item_id": tf.io.FixedLenFeature([], tf.string),
        "count": tf.io.FixedLenFeature([], tf.int64),
        "vector": tf.io.RaggedFeature(tf.float32)}


def test_reads_every_file_in_sorted_order_across_batches(tmp_path):
    _write(tmp_path / "part-1.gz", [(b"c", 3, [3.0, 0.5])])
    _write(tmp_path / "part-0.gz", [(b"a", 1, [1.0, 0.5]), (b"b", 2, [2.0, 0.5])])
    columns = records.read_columns(str(tmp_path / "part-*.gz"), SPEC, batch_size=2)
    assert columns["item_id"].tolist() == [b"a", b"b", b"c"]
    assert columns["count"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(columns["vector"], [[1.0, 0.5], [2.0, 0.5], [3.0, 0.5]])


def test_empty_files_give_empty_columns_and_no_files_an_error(tmp_path):
    _write(tmp_path / "empty.gz", [])
    columns = records.read_columns(str(tmp_path / "empty.gz"), SPEC)
    assert columns["item_id"].shape == (0,) and columns["vector"].shape == (0, 0)
    with pytest.raises(FileNotFoundError, match="no files match"):
        records.read_columns(str(tmp_path / "missing-*"), SPEC)
