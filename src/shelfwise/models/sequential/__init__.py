"""The flagship: a language-model-informed sequential recommender (SASRec-style, torch).

Items are a learned projection of their text vector plus an ID embedding trained with ID dropout,
so an item without interactions is represented from its text alone, in the same space. A shopper is
a causal transformer over their last `max_len` items; the hidden state at the last position scores
every item. A new event is one more position in the input: recommendations change with no refit.

The transformer is one part of a blend, because measurements said so: on the tuning splits EASE,
next-item transitions and what sells now (time-decayed sales) each beat it on some data set, and a
weighted sum of z-scored parts beats every part. The weights, EASE's regularisation and the trend's
half-life are chosen on held-out items of the training data; a part the holdout does not want gets
weight 0. Every part reads the shopper's current history, so a new event still changes the answer at
once. Items no history holds (cold) inherit the blended score of their nearest items in text.

One job per module:

- `network`: the torch modules, the sampled-softmax step and the scoring forward;
- `histories`: deduplicated, padded and windowed histories, and the fit's holdout;
- `training`: `train_network`, the training loop (early stopping on the holdout, time budget,
  data-parallel hooks);
- `blend`: the parts, `BlendWeights`, and the grid and coordinate ascent that choose them;
- `cold`: text neighbours and the cold-item policy;
- `state`: the fitted state as named arrays (what `save` writes and `load` reads);
- `model`: `SequentialRecommender`, which runs a fit in order and holds the fitted state.
"""

from shelfwise.models.sequential.blend import BLEND_PARTS, TREND_HALF_LIVES, BlendWeights
from shelfwise.models.sequential.cold import ColdPolicy, inherit_cold, text_neighbours
from shelfwise.models.sequential.model import SequentialRecommender
from shelfwise.models.sequential.training import TrainingJob, TrainResult, World, train_network

__all__ = [
    "BLEND_PARTS",
    "TREND_HALF_LIVES",
    "BlendWeights",
    "ColdPolicy",
    "SequentialRecommender",
    "TrainResult",
    "TrainingJob",
    "World",
    "inherit_cold",
    "text_neighbours",
    "train_network",
]
