"""A failed in-graph check reaches the client as its own sentence, not TF's report."""
import tensorflow as tf

from serving import model_manager


def test_assertion_text_is_extracted_and_other_errors_pass_through():
    @tf.function
    def checked(k):
        with tf.control_dependencies([tf.debugging.assert_less_equal(
                k, 5, message="k must be between 1 and 5 (index.max_k)")]):
            return tf.identity(k)
    try:
        checked(tf.constant(9))
    except tf.errors.InvalidArgumentError as e:
        assert model_manager.model_error(e) == "k must be between 1 and 5 (index.max_k)"
    plain = tf.errors.InvalidArgumentError(None, None, "Expected int64")
    assert model_manager.model_error(plain) == "Expected int64"
