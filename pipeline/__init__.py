"""twotower. TF_USE_LEGACY_KERAS must be set before TensorFlow is first imported (TFRS needs tf-keras)."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
