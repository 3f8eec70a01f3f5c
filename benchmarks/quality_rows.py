"""Rows of `twotower bench quality`: the configs compared and the reference rows' names.

Trained rows are config overrides on top of the defaults (twotower/config.py). The ablation
rows add one trick at a time on the default training settings (optimizer, learning rate,
batch size, towers); only `baseline` uses the TFRS tutorial's own settings.
"""
from __future__ import annotations


# The TFRS basic-retrieval tutorial: id embeddings of width 32, in-batch softmax summed over
# the batch (tfrs.tasks.Retrieval's reduction), no L2 normalisation or temperature, Adagrad
# 0.1, batch 8192, no id dropout.
BASELINE = ("model.use_features=false", "model.embedding_dim=32", "model.hidden_layers=[]",
            "model.id_dropout=0",
            "model.l2_normalize=false", "model.temperature=1.0", "model.popularity_prior=0",
            "loss.pool_ratio=0", "loss.logq_correction=false",
            "loss.remove_accidental_hits=false", "training.optimizer=adagrad",
            "training.learning_rate=0.1", "training.batch_size=8192", "loss.reduction=sum")
# Cumulative ablation from plain in-batch softmax with feature towers to the full default.
_FEATURES = ("model.l2_normalize=false", "model.temperature=1.0", "model.popularity_prior=0",
             "loss.pool_ratio=0", "loss.logq_correction=false",
             "loss.remove_accidental_hits=false")
_L2_TAU = tuple(o for o in _FEATURES if not o.startswith(("model.l2", "model.temperature")))
_MIXED = tuple(o for o in _L2_TAU if not o.startswith("loss.pool_ratio"))
_LOGQ = tuple(o for o in _MIXED if not o.startswith("loss.logq"))

TRAINED_ROWS: dict[str, tuple[str, ...]] = {
    "baseline": BASELINE,
    "+features": _FEATURES,
    "+l2_tau": _L2_TAU,
    "+mixed_negatives": _MIXED,
    "+logq": _LOGQ,
    "default": (),
    "ids_only": ("model.use_features=false",),
    "loss_bce": ("loss.loss=bce",),
    "loss_bpr": ("loss.loss=bpr",),
    "loss_hinge": ("loss.loss=hinge",),
}
HARD_NEGATIVES = 64  # of the 1,024 + 256 candidates per row at the default batch and pool
# The seed's claims (issue 15, item 4), run with `bench quality --claims`: the pool against
# in-batch negatives only and a popularity^0.75 pool sampler; each loss with and without hard
# negatives; a τ sweep and τ from tune-temperature's rule (TAU_RULE, computed per protocol
# from an unnormalised model trained on the train split).
TAU_RULE = "tau_rule"
CLAIM_ROWS: dict[str, tuple[str, ...]] = {
    "no_pool": ("loss.pool_ratio=0",),
    "pool_popularity": ("pool.sampler=popularity", "pool.alpha=0.75"),
    **{f"loss_{loss}_hard": (f"loss.loss={loss}", f"loss.num_hard_negatives={HARD_NEGATIVES}")
       for loss in ("softmax", "bce", "bpr", "hinge")},
    **{f"tau_{tau:g}": (f"model.temperature={tau:g}",) for tau in (0.05, 0.07, 0.1, 0.14)},
    TAU_RULE: (),
}
MOSTPOP = "mostpop"
ITEMKNN_HISTORY = "itemknn_history"  # the history protocol's co-occurrence reference
# The strongest simple baselines (benchmarks/quality_references.py).
PTOPFREQ, PTOPFREQ_ASOF, PTOPFREQ_DECAY, EASE = ("ptopfreq", "ptopfreq_asof",
                                                 "ptopfreq_decay", "ease")
REFERENCE_ROWS = (PTOPFREQ, PTOPFREQ_ASOF, PTOPFREQ_DECAY, EASE)
ROW_NAMES = ("baseline", MOSTPOP, *REFERENCE_ROWS, ITEMKNN_HISTORY) + tuple(
    name for name in TRAINED_ROWS if name != "baseline") + tuple(CLAIM_ROWS)
# Rows run by default per dataset: every ablation on MovieLens; on other datasets the
# default model beside the same model without features (ids only) and MostPop.
DATASET_ROWS = {"movielens": tuple(name for name in TRAINED_ROWS if name != "ids_only"),
                "completejourney": ("ids_only", "default"),
                "instacart": ("default",)}  # ids are its only features


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    """`NAME:section.field=value,section.field=value` -> (name, overrides) for an extra row.

    Raises:
      ValueError: naming the expected form.
    """
    name, sep, overrides = text.partition(":")
    if not sep or not name or not overrides:
        raise ValueError(f"--variant {text!r}: expected NAME:section.field=value[,...], e.g. "
                         "tau_0.1:model.temperature=0.1")
    return name, tuple(part.strip() for part in overrides.split(",") if part.strip())

