"""The core floor: what every other package shares and nothing above it defines.

Config, the data contract, errors, keys, log setup, run paths, tf.Example records, child
processes and the files a model carries (versions, warm-up requests); imports no TFX or Beam,
so the model server (serving/) installs without the training stack. docs/architecture.md
("Floors") maps the packages above it.
"""
