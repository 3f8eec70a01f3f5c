"""LazyAdam against Adam worked by hand."""
import numpy as np
import pytest
import tensorflow as tf

from components.trainer.optimizers import LazyAdam

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7


def _sparse_step(optimizer, table, rows, values):
    grad = tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(rows, tf.int64),
                            tf.constant(table.shape, tf.int64))
    optimizer.apply_gradients([(grad, table)])


def test_sparse_updates_touch_only_the_batch_rows_with_adam_maths():
    table = tf.Variable(np.ones((4, 2), np.float32))
    optimizer = LazyAdam(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    # Step 1: rows 0 and 2, row 2 twice (the base optimizer sums duplicates: g = 1.5).
    _sparse_step(optimizer, table, [0, 2, 2], [[1.0, -2.0], [0.5, 0.5], [1.0, 1.0]])
    g1 = np.array([[1.0, -2.0], [1.5, 1.5]])
    m1, v1 = (1 - B1) * g1, (1 - B2) * g1 ** 2
    alpha1 = LR * np.sqrt(1 - B2) / (1 - B1)
    w1 = 1 - alpha1 * m1 / (np.sqrt(v1) + EPS)  # ≈ 1 - LR·sign(g) on a first step
    np.testing.assert_allclose(table.numpy()[[0, 2]], w1, rtol=1e-5)
    np.testing.assert_array_equal(table.numpy()[[1, 3]], np.ones((2, 2)))
    # Step 2: row 2 only. Row 0 keeps its weights and moments (Adam would decay m and move
    # row 0 again by alpha2·β1·m1 / (sqrt(β2·v1) + ε)).
    _sparse_step(optimizer, table, [2], [[-1.0, 0.0]])
    g2 = np.array([-1.0, 0.0])
    m2 = B1 * m1[1] + (1 - B1) * g2
    v2 = B2 * v1[1] + (1 - B2) * g2 ** 2
    alpha2 = LR * np.sqrt(1 - B2 ** 2) / (1 - B1 ** 2)
    np.testing.assert_allclose(table.numpy()[2], w1[1] - alpha2 * m2 / (np.sqrt(v2) + EPS),
                               rtol=1e-5)
    np.testing.assert_allclose(table.numpy()[0], w1[0], rtol=1e-6)
    # pylint: disable-next=protected-access
    m, v = optimizer._momentums[0].numpy(), optimizer._velocities[0].numpy()
    np.testing.assert_allclose([m[0], v[0]], [m1[0], v1[0]], rtol=1e-4)  # 1 - β2 in float32
    np.testing.assert_array_equal([m[1], v[3]], np.zeros((2, 2)))


@pytest.mark.parametrize("optimizer_class", [LazyAdam, tf.keras.optimizers.Adam])
def test_dense_gradients_follow_adam(optimizer_class):
    """Dense gradients (tower layers) take Keras's Adam path unchanged."""
    weights = tf.Variable([1.0, -1.0])
    optimizer = optimizer_class(LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    for _ in range(2):
        optimizer.apply_gradients([(tf.constant([0.5, -0.25]), weights)])
    # A constant gradient: m_hat = g and v_hat = g² at every step, so each step moves
    # each weight by lr·sign(g) (up to ε).
    np.testing.assert_allclose(weights.numpy(), [1.0 - 2 * LR, -1.0 + 2 * LR], rtol=1e-5)


def test_the_first_sparse_step_equals_adams():
    """From zero moments Adam's dense step leaves unused rows in place too, so one step of
    either optimizer gives the same table."""
    tables = [tf.Variable(np.arange(8, dtype=np.float32).reshape(4, 2)) for _ in range(2)]
    for table, optimizer in zip(tables, [LazyAdam(LR), tf.keras.optimizers.Adam(LR)]):
        _sparse_step(optimizer, table, [3, 1], [[0.2, -0.1], [1.0, 4.0]])
    np.testing.assert_allclose(tables[0].numpy(), tables[1].numpy(), rtol=1e-6)
