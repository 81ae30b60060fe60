"""Contrastive fine-tuning of the encoder on co-interaction pairs.

Two items that one shopper took close together in time are a positive pair; the other items of the
batch are the negatives (in-batch softmax, as in sentence-transformers' MultipleNegativesRankingLoss).
Pairs come only from the data set handed in, so passing a split's training data keeps the test
targets out. The run is bounded by a number of pairs, epochs and a wall-clock budget.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.data.dataset import Dataset
from shelfwise.errors import ConfigError
from shelfwise.text.encoder import DEFAULT_ENCODER, SentenceTransformerEncoder
from shelfwise.text.item_text import ItemTextTemplate

logger = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    path: Path
    pairs: int
    steps: int
    seconds: float
    losses: list[float]


def cointeraction_pairs(
    dataset: Dataset,
    texts: list[str],
    *,
    window: int = 3,
    max_gap_days: float | None = 7.0,
    max_pairs: int = 4000,
    max_per_item: int = 20,
    seed: int = 42,
) -> np.ndarray:
    """(anchor, positive) item index pairs: distinct items at most `window` steps apart in a shopper's
    time-ordered history (and at most `max_gap_days` apart in time, where times are known), both with text.
    Each item joins at most `max_per_item` pairs, so a best-seller cannot fill every batch."""
    frame = dataset.interactions.iloc[dataset.time_order()]
    frame = frame.drop_duplicates(["user", "item"], keep="first")
    users = frame["user"].to_numpy()
    items = frame["item"].to_numpy()
    stamps = frame["timestamp"]
    has_time = bool(stamps.notna().all()) and max_gap_days is not None
    times = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) if has_time else None
    has_text = np.array([bool(t) for t in texts])
    pairs = []
    for step in range(1, window + 1):
        same_user = users[step:] == users[:-step]
        ok = same_user & has_text[items[step:]] & has_text[items[:-step]]
        if times is not None:
            ok &= (times[step:] - times[:-step]) <= pd.Timedelta(days=max_gap_days).value
        pairs.append(np.stack([items[:-step][ok], items[step:][ok]], axis=1))
    candidates = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    candidates = np.unique(np.sort(candidates, axis=1), axis=0)
    rng = np.random.default_rng(seed)
    candidates = candidates[rng.permutation(len(candidates))]
    usage = np.zeros(dataset.n_items, dtype=np.int64)
    chosen = []
    for left, right in candidates:
        if usage[left] >= max_per_item or usage[right] >= max_per_item:
            continue
        usage[left] += 1
        usage[right] += 1
        chosen.append((left, right) if rng.random() < 0.5 else (right, left))
        if len(chosen) >= max_pairs:
            break
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)


def finetune_encoder(
    dataset: Dataset,
    out: str | os.PathLike[str],
    *,
    encoder: str = DEFAULT_ENCODER,
    template: ItemTextTemplate | None = None,
    max_pairs: int = 4000,
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 3e-5,
    max_seq_length: int = 64,
    max_seconds: float = 300.0,
    scale: float = 20.0,
    seed: int = 42,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune `encoder` on `dataset`'s co-interaction pairs and save it as a model folder at `out`."""
    import torch
    import torch.nn.functional as F
    from rich.progress import Progress

    if batch_size < 2:
        raise ConfigError("Fine-tuning needs batch_size >= 2 (the other pairs of a batch are the negatives).")
    texts = (template or ItemTextTemplate()).compose_all(dataset.items)
    pairs = cointeraction_pairs(dataset, texts, max_pairs=max_pairs, seed=seed)
    if len(pairs) < batch_size:
        raise ConfigError(
            f"Only {len(pairs)} co-interaction pairs in {dataset.name!r}; fine-tuning needs at least {batch_size}."
        )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SentenceTransformerEncoder(encoder).load()
    inference_length = model.max_seq_length
    model.max_seq_length = max_seq_length
    model.train()
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    steps_per_epoch = len(pairs) // batch_size
    total = steps_per_epoch * epochs
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (total - step) / max(1, total - warmup))
    )
    started = time.perf_counter()
    losses: list[float] = []
    steps = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("fine-tuning", total=total)
        for _ in range(epochs):
            order = rng.permutation(len(pairs))
            for start in range(0, steps_per_epoch * batch_size, batch_size):
                batch = pairs[order[start : start + batch_size]]
                anchors = tokenize([texts[i] for i in batch[:, 0]])
                positives = tokenize([texts[i] for i in batch[:, 1]])
                left = F.normalize(model(anchors)["sentence_embedding"], dim=-1)
                right = F.normalize(model(positives)["sentence_embedding"], dim=-1)
                scores = left @ right.T * scale
                labels = torch.arange(len(batch))
                # the same item may sit in two pairs of a batch: do not count it as a negative of itself
                same = torch.from_numpy(batch[:, 1][None, :] == batch[:, 1][:, None])
                same &= ~torch.eye(len(batch), dtype=torch.bool)
                scores = scores.masked_fill(same, -1e4)
                loss = (F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels)) / 2
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                steps += 1
                bar.advance(task)
                if time.perf_counter() - started > max_seconds:
                    logger.warning("fine-tuning stopped at its time budget after %d steps", steps)
                    break
            else:
                continue
            break
    model.eval()
    model.max_seq_length = inference_length
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return FinetuneResult(out, len(pairs), steps, time.perf_counter() - started, losses)
