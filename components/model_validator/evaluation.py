"""Scores a Trainer export, or MostPop over its catalogue, on an eval split with exact search
over the whole catalogue."""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf

from components.negative_pool import artifact_io
from components.trainer import eval_events, eval_sample, export, features, metrics
from components.trainer.train_history import TrainHistory, read_train_history
from twotower.contract import Contract

def evaluate_export(serving_dir: str, train_pattern: Union[str, Sequence[str]], eval_pattern: str,
                    ks: Sequence[int], sample: Optional[int] = None, reuse: bool = True,
                    history: Optional[TrainHistory] = None,
                    catalog: Optional[Sequence[str]] = None) -> metrics.Evaluation:
    """metrics.evaluate_events for the query tower and catalogue embeddings of one export,
    or the Trainer's own when it scored the same events (eval_events.py).

    Args:
      serving_dir: A Trainer export (query_tower/, candidate_embeddings.tfrecord.gz).
      train_pattern: Train split files, or a list of patterns (a window of spans): the
        history the filtered protocol removes.
      eval_pattern: Eval split files.
      ks: Cut-offs.
      sample: Score about this many eval interactions (eval_sample: the same ones in
        every stage); None scores all.
      reuse: Take the Trainer's scored events when they match (False: always score).
      history: The split's TrainHistory when another model was scored there (read here
        otherwise, or when it was read with other id features).
      catalog: The export's catalogue ids (catalog_ids) when already read: its embeddings
        are then read only if the events are scored here (a 1M-item file takes seconds).
    """
    contract = artifact_io.read_contract(serving_dir)
    path = os.path.join(serving_dir, export.EMBEDDINGS_FILE)
    ids, embeddings = (list(catalog), None) if catalog is not None else export.read_embeddings(path)
    history = _history(history, train_pattern, eval_pattern, sample, ids, contract)
    stored = None
    if reuse:
        stored = eval_events.load(
            serving_dir, eval_events.key(train_pattern, eval_pattern, sample, 0),
            history.counts(ids), ks)
    if stored is not None:
        logging.info("%s: the Trainer's scored eval events are these (same files and sample): "
                     "not scored again", serving_dir)
        return stored
    if embeddings is None:
        ids, embeddings = export.read_embeddings(path)
    tower = tf.saved_model.load(os.path.join(serving_dir, export.QUERY_TOWER_DIR))
    serve = tower.signatures["serving_default"]
    inputs = sorted(serve.structured_input_signature[1])

    def embed(batch: dict[str, tf.Tensor]) -> tf.Tensor:
        return serve(**features.select(batch, inputs))[export.EMBEDDING_OUTPUT]
    return evaluate_catalogue(embed, ids, lambda counts: embeddings, contract, train_pattern,
                              eval_pattern, ks, sample, history=history)


def _history(history: Optional[TrainHistory], train_pattern: Union[str, Sequence[str]],
             eval_pattern: str, sample: Optional[int], catalog_ids: Sequence[str],
             contract: Contract) -> TrainHistory:
    """`history` when it fits `contract`, else the split's, read now."""
    if history is not None and history.serves(contract):
        return history
    return read_train_history(train_pattern, eval_pattern, sample, catalog_ids, contract)


def mostpop_vectors(train_counts: np.ndarray) -> np.ndarray:
    """[N, 1] item "embeddings" whose dot product with a query of 1 ranks by training count,
    ties broken by catalogue order (so no two items tie)."""
    order = np.arange(len(train_counts), dtype=np.float64)
    return (train_counts + 0.5 * (1.0 - order / max(len(order), 1)))[:, np.newaxis]


def mostpop_queries(rows: tf.Tensor) -> tf.Tensor:
    """[B, 1] of ones for a batch's [B] rows: every user gets the same ranking."""
    return tf.ones([tf.shape(rows)[0], 1], tf.float64)


def catalog_ids(serving_dir: str) -> list[str]:
    """The [N] item ids an export scores over (its catalogue)."""
    return export.read_embeddings(os.path.join(serving_dir, export.EMBEDDINGS_FILE))[0]


def evaluate_mostpop(serving_dir: str, train_pattern: Union[str, Sequence[str]],
                     eval_pattern: str, ks: Sequence[int], sample: Optional[int] = None,
                     history: Optional[TrainHistory] = None,
                     catalog: Optional[Sequence[str]] = None) -> metrics.Evaluation:
    """MostPop (the items most frequent in the train split, for every user) scored like
    evaluate_export over the same export's catalogue (`catalog`, when already read): the
    floor a model must beat."""
    contract = artifact_io.read_contract(serving_dir)
    return evaluate_catalogue(lambda batch: mostpop_queries(batch[contract.item_id]),
                              list(catalog) if catalog is not None else catalog_ids(serving_dir),
                              mostpop_vectors, contract,
                              train_pattern, eval_pattern, ks, sample, same_for_all=True,
                              history=history)


def evaluate_catalogue(embed: Callable[[dict[str, tf.Tensor]], tf.Tensor],
                       catalog_ids: Sequence[str],
                       item_vectors: Callable[[np.ndarray], np.ndarray], contract: Contract,
                       train_pattern: Union[str, Sequence[str]], eval_pattern: str,
                       ks: Sequence[int], sample: Optional[int] = None,
                       same_for_all: bool = False,
                       history: Optional[TrainHistory] = None) -> metrics.Evaluation:
    """metrics.evaluate_events of any scorer over a catalogue, with the filter and counts streamed
    from the train split (evaluate_export's protocol).

    Args:
      embed: Parsed eval batch -> [b, D] query vectors.
      catalog_ids: [N] item ids.
      item_vectors: [N] training counts -> [N, D] item vectors (a model's embeddings
        ignore the counts; MostPop is made of them).
      contract: Names the id features.
      train_pattern, eval_pattern, ks, sample: As evaluate_export's.
      same_for_all: The scorer ranks the catalogue the same for every query (the item
        vectors are [N, 1], the queries 1): scored as a metrics.FixedRanking.
      history: As evaluate_export's.
    """
    history = _history(history, train_pattern, eval_pattern, sample, catalog_ids, contract)
    seen, counts = history.seen(catalog_ids), history.counts(catalog_ids)
    eval_batches = features.dataset(eval_pattern, metrics.eval_rows(len(catalog_ids)),
                                    False, 0, contract, features.interaction_names(contract),
                                    rate=eval_sample.sample_rate(eval_pattern, sample))
    vectors = item_vectors(counts)
    return metrics.evaluate_events(
        embed, eval_batches, catalog_ids, tf.constant(vectors), seen, counts, contract, ks,
        eval_sample.expected_rows(eval_pattern, sample),
        metrics.FixedRanking(vectors[:, 0]) if same_for_all else None)
