"""LazyAdam: Adam whose sparse updates touch only the rows a batch uses.

Keras's Adam applies a sparse gradient (an embedding table's `tf.IndexedSlices`) densely:
every step it decays the whole first and second moment tables and moves every row of the
variable, so a step costs several table-sized temporaries and passes over the table however
few rows the batch looked up. With a catalogue of millions that is most of a training step's
time and memory. LazyAdam (the row-wise variant TF Addons and PyTorch's SparseAdam use)
updates m, v and the variable only at the gradient's rows, with the bias correction of the
global step; rows a batch does not use keep their moments until they next appear. Dense
gradients (tower layers) get Keras's Adam unchanged.
"""
import tensorflow as tf


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-wise updates for sparse gradients (embedding tables).

    For a sparse gradient with unique rows I and values g ([|I|, d]; the base optimizer sums
    duplicate rows before `update_step`), at global step t:

        m[I] = β1·m[I] + (1-β1)·g
        v[I] = β2·v[I] + (1-β2)·g²
        w[I] -= lr·sqrt(1-β2^t)/(1-β1^t) · m[I] / (sqrt(v[I]) + ε)

    and no other row of m, v or w changes. Adam's amsgrad and adaptive_epsilon options apply
    to dense gradients only (the Trainer sets neither).
    """

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        lr = tf.cast(self.learning_rate, variable.dtype)
        step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1 = tf.cast(self.beta_1, variable.dtype)
        beta_2 = tf.cast(self.beta_2, variable.dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        return variable.scatter_sub(tf.IndexedSlices(
            alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
