"""`Engine`: recommend, similar items, new arrivals and fresh events over a trained model and a store.

The store is the one source of truth for shoppers: every answer reads the shopper's recent events
from it and scores them with the model (`Recommender.score_histories`), so an event recorded a
moment ago shapes the next answer with no refit. Items the model was not trained on (added to the
catalog later) are placed by their text: their cosine to the shopper's text profile is mapped onto
the model's score scale by quantile, so a new item that matches a shopper's history as well as the
model's best candidates do ranks among them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from shelfwise.data.dataset import Dataset
from shelfwise.data.schema import DEFAULT_EVENT_WEIGHTS, EVENT_TYPE_ALIASES, EVENT_TYPES, epoch_seconds
from shelfwise.engine.answers import Recommendation, segment_view
from shelfwise.engine.catalog import Catalog, CatalogSnapshot
from shelfwise.engine.catalog_text import CatalogText, StagedItems
from shelfwise.engine.generation import (
    Generation,
    forget_in_model_dir,
    make_generation,
    read_model_dir,
)
from shelfwise.engine.scoring import catalog_scores, retrieve, with_cold
from shelfwise.engine.seeding import item_records, seed_store
from shelfwise.engine.segments import Segmentation, segment_shoppers
from shelfwise.engine.understanding import build_profile, rank_search, taste_vector
from shelfwise.errors import ConfigError, EmptyQueryError, UnknownIdError
from shelfwise.models import Recommender
from shelfwise.retrieval import Filters, Reason, cross_category, dominant_categories, explain, mmr
from shelfwise.settings import load_settings
from shelfwise.store import DeletionReport, EventRecord, ItemRecord, Store, UserSummary, open_store

logger = logging.getLogger(__name__)

#: How many candidates each half of a hybrid search (lexical, semantic) brings at least.
_SEARCH_DEPTH = 200
#: Defaults of `Engine.search`: the lexical share beside the semantic score, and the shopper's weight
#: (near what benchmarks/search.py chose on the tuning splits of the public data sets: search.md).
SEARCH_LEXICAL_WEIGHT = 0.7
SEARCH_PERSONAL_WEIGHT = 0.2


class Engine:
    """Answers recommend / similar / new arrivals and takes fresh events and catalog changes.

    Args:
        model_dir: a folder written by `shelfwise train` (the model, plus its data set in ``dataset/``).
        store: a `Store` or its URL (default: SQLite in shelfwise's data directory). An empty store
            is filled with the model's catalog and the training histories on first start.
        encoder: text encoder for item text (default: the setting ``encoder``).
        max_history: how many of a shopper's latest events an answer reads.
        new_days: an item created within this many days is a new arrival.
        index: ``exact``, ``hnsw`` (faiss) or ``auto`` (HNSW from `catalog_text.HNSW_FROM` items on) for the item
            text index and, for models whose scores are inner products (ALS, BPR, mf, content), the
            index that retrieves their candidates instead of scoring every item.
    """

    def __init__(
        self,
        model_dir: str | Path,
        store: Store | str | None = None,
        *,
        encoder: str | None = None,
        max_history: int = 200,
        new_days: float = 30.0,
        index: str = "auto",
        cache_dir: str | None = None,
        forget_in_model_dir: bool = True,
    ) -> None:
        self.max_history = max_history
        self.new_days = new_days
        self.forget_in_model_dir = forget_in_model_dir
        self._owns_store = store is None or isinstance(store, str)
        self.store: Store = open_store(store) if store is None or isinstance(store, str) else store
        self._write_lock = threading.RLock()
        self._model_files_lock = threading.Lock()  # reading a model folder against rewriting it
        model_dir = Path(model_dir)
        model, dataset = read_model_dir(model_dir)
        self._catalog = Catalog(self._bootstrap(dataset))
        catalog = self.catalog
        self._popularity = np.zeros(len(catalog), dtype=np.float64)
        for item_id, count in self.store.item_event_counts().items():
            position = catalog.index.get(item_id)
            if position is not None:
                self._popularity[position] = count
        if index not in ("auto", "exact", "hnsw"):
            raise ConfigError(f"index must be 'auto', 'exact' or 'hnsw'. Got {index!r} instead.")
        self.text = CatalogText(catalog, encoder=encoder or load_settings().encoder, index=index, cache_dir=cache_dir)
        self.index_kind = self.text.index_kind
        self._generation = self._make_generation(model, dataset, model_dir)
        self._refresh_popular()

    # ------------------------------------------------------------------------------- loading
    def _bootstrap(self, dataset: Dataset) -> list[ItemRecord]:
        with self._write_lock:
            return seed_store(self.store, dataset)

    def _make_generation(self, model: Recommender, dataset: Dataset, model_dir: Path) -> Generation:
        return make_generation(model, dataset, model_dir, self.catalog, self.index_kind)

    @property
    def catalog(self) -> CatalogSnapshot:
        """The catalog as published now: a read takes it once and uses only that snapshot."""
        return self._catalog.current

    @property
    def model(self) -> Recommender:
        return self._generation.model

    @property
    def model_version(self) -> str:
        return self._generation.version

    @property
    def model_dir(self) -> Path:
        return self._generation.model_dir

    def reload(self, model_dir: str | Path | None = None) -> str:
        """Load a (newly trained) model folder and swap it in; answers in flight finish on the old one.
        Returns the new model version."""
        model_dir = Path(model_dir) if model_dir is not None else self._generation.model_dir
        with self._model_files_lock:  # not while a privacy deletion rewrites the folder
            model, dataset = read_model_dir(model_dir)
        with self._write_lock:
            catalog = self.catalog
            new_items = [r for r in item_records(dataset) if r.item_id not in catalog]
            if new_items:
                staged = self._stage_items(new_items)
                self.store.upsert_items(new_items)
                self._publish_items(staged)
            self._generation = self._make_generation(model, dataset, model_dir)
        logger.info("engine: now serving %s (%s, version %s)", model_dir, model.name, self.model_version)
        return self.model_version

    # ------------------------------------------------------------------------------- writes
    def record_events(self, events: Sequence[EventRecord]) -> int:
        """Validate and store events (all or none); the shoppers' next answers include them. An
        event whose `event_id` is stored already is not stored again. Returns how many were stored."""
        problems = []
        clean = []
        catalog = self.catalog
        for row, event in enumerate(events):
            try:
                epoch_seconds(event.timestamp)
            except ValueError as exc:
                problems.append(f"events[{row}].timestamp: {exc}")
            kind = EVENT_TYPE_ALIASES.get(str(event.event_type).strip().lower())
            if kind is None:
                problems.append(f"events[{row}].event_type: {event.event_type!r} is not one of {list(EVENT_TYPES)}")
            if event.item_id not in catalog:
                problems.append(f"events[{row}].item_id: unknown item {event.item_id!r}")
            if not str(event.user_id).strip():
                problems.append(f"events[{row}].user_id: must not be empty")
            clean.append(replace(event, event_type=kind or ""))
        if problems:
            unknown_only = all(": unknown item" in p for p in problems)
            error = UnknownIdError if unknown_only else ConfigError
            raise error("; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))
        with self._write_lock:
            stored = self.store.add_new_events(clean)  # those stored before (by event id) left out
            popularity = self._popularity
            for event in stored:
                popularity[catalog.index[event.item_id]] += 1
        return len(stored)

    def upsert_items(self, records: Sequence[ItemRecord]) -> dict[str, int]:
        """Add or replace catalog items. New items are encoded and recommendable at once; stock and
        price changes apply to the next answer."""
        ids = [r.item_id for r in records]
        duplicated = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
        if duplicated:
            raise ConfigError(f"items: item_id(s) {duplicated[:10]} appear more than once in one request.")
        with self._write_lock:
            staged = self._stage_items(list(records))  # encoded before anything is stored or shown
            created, updated = self.store.upsert_items(records)
            self._publish_items(staged)
        return {"created": created, "updated": updated}

    def _stage_items(self, records: list[ItemRecord]) -> StagedItems:
        return self.text.stage(self.catalog, records)

    def _publish_items(self, staged: StagedItems) -> None:
        """Make staged items readable: first every structure a read needs grows (vectors, lexical
        entries, popularity, the model's position map), then the catalog snapshot that names the new
        items is published in one assignment. Callers hold the write lock."""
        self.text.apply(staged)
        added = len(staged.added)
        if added:
            self._popularity = np.concatenate([self._popularity, np.zeros(added)])
            generation = self._generation
            generation.catalog_to_model = np.concatenate(
                [generation.catalog_to_model, np.full(added, -1, dtype=np.int64)]
            )
        self._catalog.publish(staged.snapshot)
        self._refresh_popular()

    def delete_user(self, user_id: str) -> dict:
        """Remove a shopper's events and state everywhere shelfwise keeps them; says what it removed."""
        with self._write_lock:
            history = self.store.user_events(user_id)
            if not history and not self.store.has_user(user_id):
                raise UnknownIdError(f"Unknown shopper {user_id!r}.")
            report: DeletionReport = self.store.delete_user(user_id)
            catalog = self.catalog
            for event in history:
                position = catalog.index.get(event.item_id)
                if position is not None:
                    self._popularity[position] = max(self._popularity[position] - 1, 0)
            removed = {"store_events": report.events, "store_profile": report.profile}
            removed.update({f"store_{name}": count for name, count in report.extra.items()})
            if self.forget_in_model_dir:
                with self._model_files_lock:
                    removed.update(forget_in_model_dir(self._generation, user_id))
        return {"user_id": user_id, "removed": removed}

    # ------------------------------------------------------------------------------- reads
    def has_user(self, user_id: str) -> bool:
        return self.store.has_user(user_id)

    def history(self, user_id: str) -> list[EventRecord]:
        events = self.store.user_events(user_id, limit=self.max_history)
        if not events:
            raise UnknownIdError(f"Unknown shopper {user_id!r}: no events recorded.")
        return events

    def item(self, item_id: str) -> ItemRecord:
        """One catalog item (`UnknownIdError` for an id the catalog does not hold)."""
        catalog = self.catalog
        position = self.positions_of([item_id], field_name="item_id", catalog=catalog)[0]
        return catalog.records[position]

    def positions_of(
        self, item_ids: Iterable[str], *, field_name: str = "items", catalog: CatalogSnapshot | None = None
    ) -> np.ndarray:
        index = (catalog or self.catalog).index
        positions, unknown = [], []
        for row, item_id in enumerate(item_ids):
            position = index.get(item_id)
            if position is None:
                unknown.append(f"{field_name}[{row}]: unknown item {item_id!r}")
            else:
                positions.append(position)
        if unknown:
            raise UnknownIdError("; ".join(unknown[:20]))
        return np.array(positions, dtype=np.int64)

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        filters: Filters | None = None,
        exclude_purchased: bool = True,
        exclude_seen: bool = False,
        diversity: float = 0.0,
        min_categories: int = 0,
        outside_share: float = 0.0,
    ) -> list[Recommendation]:
        """A known shopper's top-k (404-style `UnknownIdError` for a shopper with no events)."""
        return self.recommend_events(
            self.history(user_id),
            k,
            filters=filters,
            exclude_purchased=exclude_purchased,
            exclude_seen=exclude_seen,
            diversity=diversity,
            min_categories=min_categories,
            outside_share=outside_share,
        )

    def recommend_events(
        self,
        events: Sequence[EventRecord],
        k: int = 10,
        *,
        filters: Filters | None = None,
        exclude_purchased: bool = True,
        exclude_seen: bool = False,
        diversity: float = 0.0,
        min_categories: int = 0,
        outside_share: float = 0.0,
    ) -> list[Recommendation]:
        """Top-k after a list of events (oldest first); items unknown to the catalog are ignored.

        Cross-category: `min_categories` makes the list span at least that many categories, and
        `outside_share` puts at least that share of it outside the shopper's dominant categories
        (those holding 80% of their weighted events)."""
        _check_k(k)
        if not 0.0 <= diversity <= 1.0:
            raise ConfigError(f"diversity must be in [0, 1]. Got {diversity!r} instead.")
        if not 0.0 <= outside_share <= 1.0:
            raise ConfigError(f"outside_share must be in [0, 1]. Got {outside_share!r} instead.")
        if not 0 <= min_categories <= k:
            raise ConfigError(f"min_categories must be in [0, k={k}]. Got {min_categories!r} instead.")
        crossing = min_categories > 1 or outside_share > 0
        generation = self._generation
        catalog = self.catalog
        history = [(catalog.index[e.item_id], e.event_type) for e in events if e.item_id in catalog.index]
        positions = np.array([p for p, _ in history], dtype=np.int64)
        excluded = set()
        if exclude_seen:
            excluded.update(positions.tolist())
        elif exclude_purchased:
            excluded.update(p for p, kind in history if kind == "purchase")
        filters = filters or Filters()
        mask = self._mask(catalog, filters)
        if excluded:
            mask[np.fromiter(excluded, dtype=np.int64)] = False
        depth = max(k * 20, 200) if crossing else (k * 4 if diversity > 0 else k)
        retrieved = self._retrieve(generation, positions, mask, depth)
        if retrieved is not None:
            ids, top = retrieved
        else:
            ids, top = _top(self._scores(generation, positions, len(catalog)), mask, depth)
        if crossing:
            weights = [DEFAULT_EVENT_WEIGHTS.get(kind, 1.0) for _, kind in history]
            dominant = dominant_categories([catalog.categories[p] for p, _ in history], weights)
            depth = k * 4 if diversity > 0 else k
            ids, top = cross_category(
                ids,
                top,
                catalog.categories,
                depth,
                dominant=dominant,
                min_categories=min_categories,
                outside_share=outside_share,
            )
        if diversity > 0:
            ids, top = mmr(ids, top, self.text.vectors, k, diversity)
        return self._answer(catalog, ids, top, history)

    def similar(
        self, item_id: str, k: int = 10, *, filters: Filters | None = None, cross_category: bool = False
    ) -> list[Recommendation]:
        """Items like `item_id`: the model's similarity for items it knows, text for new ones. With
        `cross_category`, only items of other categories ("goes with": what shoppers take beside it)."""
        _check_k(k)
        catalog = self.catalog
        position = self.positions_of([item_id], field_name="item_id", catalog=catalog)[0]
        generation = self._generation
        model_index = generation.model_index_of(np.array([position]))[0]
        vectors = self.text.vectors
        scores = None
        if model_index >= 0:
            try:
                model_scores = generation.model.similarity_scores(np.array([model_index]))[0]
            except NotImplementedError:
                model_scores = None
            if model_scores is not None and np.isfinite(model_scores).any() and np.ptp(model_scores) > 0:
                scores = with_cold(
                    generation, model_scores, lambda targets: vectors[targets] @ vectors[position], len(catalog)
                )
        mask = self._mask(catalog, filters or Filters())
        mask[position] = False
        if cross_category:
            categories = catalog.categories
            mask &= categories != categories[position]
        if scores is None:  # an item the model does not know: nearest by text (faiss HNSW when enabled)
            ids, top = self.text.index.search(vectors[position], k, mask)
        else:
            ids, top = _top(scores, mask, k)
        answer = self._answer(catalog, ids, top, [(int(position), "view")])
        if cross_category:
            title = catalog.records[position].title or item_id
            reason = Reason("goes_with", f"goes with {title}", int(position))
            answer = [replace(r, reason=reason, _anchor=item_id) for r in answer]
        return answer

    def new_arrivals(
        self, user_id: str | None = None, k: int = 10, *, days: float | None = None, filters: Filters | None = None
    ) -> list[Recommendation]:
        """Items created in the last `days` (default: `new_days`), ranked for the shopper (by the
        model and the shopper's text profile), or by popularity for nobody in particular."""
        _check_k(k)
        days = self.new_days if days is None else days
        history = [] if user_id is None else self.history(user_id)
        catalog = self.catalog
        pairs = [(catalog.index[e.item_id], e.event_type) for e in history if e.item_id in catalog.index]
        positions = np.array([p for p, _ in pairs], dtype=np.int64)
        scores = self._scores(self._generation, positions, len(catalog))
        mask = self._mask(catalog, filters or Filters()) & self._new_mask(catalog, days)
        ids, top = _top(scores, mask, k)
        return self._answer(catalog, ids, top, pairs)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        user_id: str | None = None,
        lexical_weight: float = SEARCH_LEXICAL_WEIGHT,
        personal_weight: float = SEARCH_PERSONAL_WEIGHT,
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """Hybrid search: BM25 over the catalog's words (misspelt words replaced by the nearest
        catalog word) fused with the encoder's cosine (synonyms, other languages), re-ranked by the
        shopper's taste vector when `user_id` is given."""
        _check_k(k)
        text = (query or "").strip()
        if not text:
            raise EmptyQueryError("q: the search query is empty; give a few words.")
        if len(text) > 512:
            raise ConfigError(f"q: at most 512 characters, not {len(text)}.")
        for name, value in (("lexical_weight", lexical_weight), ("personal_weight", personal_weight)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1]. Got {value!r} instead.")
        history = self.history(user_id) if user_id is not None else []
        catalog = self.catalog
        n = len(catalog)
        vectors = self.text.vectors[:n]
        mask = self._mask(catalog, filters or Filters(in_stock=False))
        query_vector = self.text.query_vector(text)
        depth = max(_SEARCH_DEPTH, 4 * k)
        semantic_ids, _ = self.text.index.search(query_vector, depth, mask)
        bm25 = self.text.lexical.scores(text)[:n]
        lexical_ids, _ = _top(np.where(bm25 > 0, bm25, -np.inf), mask[: len(bm25)], depth)
        lexical = self.text.lexical.match(text, bm25)
        candidates = np.union1d(semantic_ids, lexical_ids).astype(np.int64)
        if len(candidates) == 0:
            return []
        pairs = [(catalog.index[e.item_id], e.event_type) for e in history if e.item_id in catalog.index]
        taste = taste_vector(np.array([p for p, _ in pairs], dtype=np.int64), [t for _, t in pairs], vectors)
        ids, scores, affinity = rank_search(
            candidates,
            query_vector,
            lexical,
            vectors,
            taste,
            k=k,
            lexical_weight=lexical_weight,
            personal_weight=personal_weight,
            semantic_floor=self.text.semantic_floor(),
        )
        middle = None if taste is None else float(np.median(vectors[candidates] @ taste))
        quoted = text if len(text) <= 40 else text[:39] + "…"
        out = []
        for row, position in enumerate(ids.tolist()):
            personal = affinity is not None and personal_weight > 0 and affinity[row] >= middle
            reason = Reason("search", f'matches "{quoted}"' + (" and your taste" if personal else ""))
            out.append(Recommendation(catalog.ids[position], float(scores[row]), reason, catalog.records[position]))
        return out

    def profile(self, user_id: str, *, keywords: int = 10, top: int = 5, max_events: int = 1000) -> dict:
        """A shopper's profile: activity, top categories and brands with shares, price band, the
        current session's intent, and interest keywords (the catalog words nearest their taste)."""
        events = self.store.user_events(user_id, limit=max_events)
        if not events:
            raise UnknownIdError(f"Unknown shopper {user_id!r}: no events recorded.")
        terms, term_vectors = self.text.keyword_vectors()
        catalog = self.catalog
        segment = self.store.user_segment(user_id)
        names = {row["segment_id"]: row["name"] for row in self.store.list_segments()} if segment is not None else {}
        profile = build_profile(
            user_id,
            events,
            self.store.user_summary(user_id),
            index_of=catalog.index,
            records=catalog.records,
            catalog_prices=catalog.prices,
            vectors=self.text.vectors,
            terms=terms,
            term_vectors=term_vectors,
            top=top,
            keywords=keywords,
        )
        profile["segment"] = None if segment is None else {"segment_id": segment, "name": names.get(segment)}
        return profile

    def compute_segments(self, k: int | None = None, *, seed: int = 42) -> Segmentation:
        """Cluster every shopper in the store by taste (k given, or chosen by the silhouette), name the
        segments, and save segments and assignments to the store (replacing the previous ones)."""
        terms, term_vectors = self.text.keyword_vectors()
        catalog = self.catalog
        result = segment_shoppers(
            self.store.iter_events(),
            index_of=catalog.index,
            vectors=self.text.vectors,
            categories=catalog.category_names(),
            terms=terms,
            term_vectors=term_vectors,
            k=k,
            seed=seed,
        )
        rows = [
            {
                "segment_id": segment.segment_id,
                "name": segment.name,
                "size": segment.size,
                "summary": {"keywords": segment.keywords, "categories": segment.categories, **result.criterion},
                "created_at": result.created_at,
            }
            for segment in result.segments
        ]
        self.store.replace_segments(rows, result.assignments)
        return result

    def segments(self) -> list[dict]:
        """The saved segments (empty before `compute_segments`)."""
        return [segment_view(row) for row in self.store.list_segments()]

    def segment(self, segment_id: int, *, limit: int = 100, offset: int = 0) -> dict:
        """One saved segment with a page of its shoppers' ids."""
        for row in self.store.list_segments():
            if row["segment_id"] == segment_id:
                members = self.store.segment_members(segment_id, limit=limit, offset=offset)
                return {**segment_view(row), "users": members, "limit": limit, "offset": offset}
        raise UnknownIdError(f"Unknown segment {segment_id!r}.")

    def users(self, prefix: str = "", limit: int = 20) -> list[UserSummary]:
        """Shoppers whose id starts with `prefix`, most recently active first."""
        if not 1 <= limit <= 1000:
            raise ConfigError(f"limit must be in [1, 1000]. Got {limit!r} instead.")
        return self.store.list_users(prefix, limit)

    # ------------------------------------------------------------------------------- internals
    def _scores(self, generation: Generation, positions: np.ndarray, n: int) -> np.ndarray:
        """Scores over the first `n` catalog positions after a history of catalog positions."""
        return catalog_scores(generation, positions, n, self.text.vectors, self._popularity)

    def _retrieve(
        self, generation: Generation, positions: np.ndarray, mask: np.ndarray, depth: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The best `depth` allowed catalog positions through the model's vector index, or None."""
        return retrieve(generation, positions, mask, depth, self.text.vectors, self._popularity)

    @staticmethod
    def _mask(catalog: CatalogSnapshot, filters: Filters) -> np.ndarray:
        return filters.mask(in_stock=catalog.in_stock, categories=catalog.categories, prices=catalog.prices)

    def _new_mask(self, catalog: CatalogSnapshot, days: float | None = None) -> np.ndarray:
        n = len(catalog)
        recent = catalog.recent(self.new_days if days is None else days)
        to_model = self._generation.catalog_to_model
        cold = np.ones(n, dtype=bool)
        cold[: min(n, len(to_model))] = to_model[:n] < 0
        return cold | recent

    def _refresh_popular(self) -> None:
        counts = self._popularity
        threshold = np.quantile(counts[counts > 0], 0.9) if (counts > 0).any() else math.inf
        self._popular = counts >= max(threshold, 1)

    def _answer(
        self, catalog: CatalogSnapshot, ids: np.ndarray, scores: np.ndarray, history: list[tuple[int, str]]
    ) -> list[Recommendation]:
        n = len(catalog)
        popular = self._popular[:n]
        if len(popular) < n:
            popular = np.concatenate([popular, np.zeros(n - len(popular), dtype=bool)])
        reasons = explain(
            ids,
            history=history,
            vectors=self.text.vectors,
            records=catalog.records,
            new=self._new_mask(catalog),
            popular=popular,
        )
        out = []
        for item, score, reason in zip(ids, scores, reasons, strict=True):
            anchor = None if reason.item is None else catalog.ids[reason.item]
            out.append(Recommendation(catalog.ids[item], float(score), reason, catalog.records[item], anchor))
        return out

    def stats(self) -> dict:
        generation = self._generation
        return {
            "model": generation.model.name,
            "model_version": generation.version,
            "model_dir": str(generation.model_dir),
            "items": len(self.catalog),
            "items_known_to_model": int(generation.model.n_items_),
            "store": self.store.url,
            "schema_version": self.store.schema_version(),
        }

    def close(self) -> None:
        if self._owns_store:
            self.store.close()


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 1000:
        raise ConfigError(f"k must be an integer in [1, 1000]. Got {k!r} instead.")


def _top(scores: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` allowed positions (finite scores only), best first, ties to the lowest position."""
    allowed = mask & np.isfinite(scores)
    candidates = np.flatnonzero(allowed)
    if len(candidates) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    values = scores[candidates]
    if len(candidates) > k:
        cut = np.partition(values, len(values) - k)[len(values) - k]
        keep = values >= cut
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((candidates, -values))[:k]
    return candidates[order], values[order]
