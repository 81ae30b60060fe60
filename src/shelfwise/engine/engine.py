"""`Engine`: recommend, similar items, new arrivals and fresh events over a trained model and a store.

The store is the one source of truth for shoppers: every answer reads the shopper's recent events
from it and scores them with the model (`Recommender.score_histories`), so an event recorded a
moment ago shapes the next answer with no refit. Items the model was not trained on are placed in
its space by their text when they arrive (`engine/cold_items.py`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from shelfwise.data.dataset import Dataset
from shelfwise.data.schema import DEFAULT_EVENT_WEIGHTS
from shelfwise.engine.answers import Recommendation, build_answer, segment_view
from shelfwise.engine.catalog import Catalog, CatalogSnapshot
from shelfwise.engine.catalog_text import CatalogText, StagedItems
from shelfwise.engine.model_folder import read_model_dir
from shelfwise.engine.popularity import EventCounts, Popularity
from shelfwise.engine.search import SEARCH_LEXICAL_WEIGHT, SEARCH_PERSONAL_WEIGHT, checked_query, search_catalog
from shelfwise.engine.segments import Segmentation, segment_page, segment_shoppers
from shelfwise.engine.served import ServedModel
from shelfwise.engine.store_fill import catalog_records, item_records
from shelfwise.engine.understanding import build_profile
from shelfwise.engine.validation import check_list_options, checked_events, checked_items
from shelfwise.errors import ConfigError, UnknownIdError, WriterBusy
from shelfwise.models import Recommender
from shelfwise.ranking import check_k, masked_topk
from shelfwise.retrieval import Filters, Reason, cross_category, dominant_categories, mmr
from shelfwise.settings import load_settings
from shelfwise.store import EventRecord, ItemRecord, Store, UserSummary, open_store, user_hash

logger = logging.getLogger(__name__)


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
        artifacts: map the vectors and indexes the model folder's ``serving/`` holds (written by
            `shelfwise train` or `shelfwise build`) instead of building them; items the store holds
            otherwise, or that came after training, are encoded at start.
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
        artifacts: bool = True,
    ) -> None:
        self.max_history = max_history
        self.new_days = new_days
        self.forget_in_model_dir = forget_in_model_dir
        self._owns_store = store is None or isinstance(store, str)
        self.store: Store = open_store(store) if store is None or isinstance(store, str) else store
        self.write_lock = threading.RLock()
        self.model_files_lock = threading.Lock()  # reading a model folder against rewriting it
        #: The last change of the store's feed this engine has seen (read before the catalog is)
        self.change_id = self.store.last_change_id()
        model, dataset = read_model_dir(model_dir := Path(model_dir))
        with self.write_lock:
            self._catalog = Catalog(catalog_records(self.store, dataset))
        self.event_counts = EventCounts()  # read whole once here; then only what is new (replication)
        self.popularity = Popularity.of_counts(self.event_counts.read(self.store), self.catalog)
        if index not in ("auto", "exact", "hnsw"):
            raise ConfigError(f"index must be 'auto', 'exact' or 'hnsw'. Got {index!r} instead.")
        self.text = CatalogText(
            self.catalog,
            encoder=encoder or load_settings().encoder,
            index=index,
            cache_dir=cache_dir,
            artifacts_from=model_dir if artifacts else None,
        )
        self.index_kind = self.text.index_kind
        self.query_cache = load_settings().query_cache
        self._served = self._serve(model, dataset, model_dir)
        self._warming = self.text.warm() if self.text.from_artifacts else None

    # ------------------------------------------------------------------------------- loading
    @property
    def catalog(self) -> CatalogSnapshot:
        """The catalog as published now: a read takes it once and uses only that snapshot."""
        return self._catalog.current

    @property
    def served(self) -> ServedModel:
        """The model served now: a read takes it once, as it takes the catalog."""
        return self._served

    def _serve(self, model: Recommender, dataset: Dataset, model_dir: Path) -> ServedModel:
        return ServedModel.load(
            model, dataset, model_dir, self.catalog, self.index_kind, self.text.index, query_cache=self.query_cache
        )

    @property
    def model(self) -> Recommender:
        return self._served.model

    @property
    def model_version(self) -> str:
        return self._served.version

    @property
    def model_dir(self) -> Path:
        return self._served.model_dir

    def reload(self, model_dir: str | Path | None = None, *, announce: bool = True) -> str:
        """Load a (newly trained) model folder and swap it in; answers in flight finish on the old one.
        Returns the new model version. `announce`: tell the other replicas (the change feed) to
        load the same folder; a replica that does so because it was told does not tell again."""
        model_dir = Path(model_dir) if model_dir is not None else self._served.model_dir
        with self.model_files_lock:  # not while a privacy deletion rewrites the folder
            model, dataset = read_model_dir(model_dir)
        with self.write_lock:
            catalog = self.catalog
            new_items = [r for r in item_records(dataset) if r.item_id not in catalog]
            if new_items:
                staged = self._stage_items(new_items)
                if announce:  # told by another replica: it stored them
                    self.store.upsert_items(new_items)
                self._publish_items(staged)
            self._served = self._serve(model, dataset, model_dir)
            version = self.model_version
            if announce:
                self.store.record_change("reload", {"model_dir": str(model_dir), "version": version})
        logger.info("engine: now serving %s (%s, version %s)", model_dir, model.name, version)
        return version

    # ------------------------------------------------------------------------------- writes
    def record_events(self, events: Sequence[EventRecord], *, wait: bool = True) -> int:
        """Validate and store events (all or none); the shoppers' next answers include them. An event
        whose `event_id` is stored already is not stored again. Returns how many were stored. `wait`
        false: raise `WriterBusy` (nothing stored) where another writer holds a lock (`Store.add_new_events`)."""
        catalog = self.catalog
        clean = checked_events(events, catalog)
        if not self.write_lock.acquire(blocking=wait):
            raise WriterBusy("another writer holds the engine's lock")
        try:
            stored = self.store.add_new_events(clean, wait=wait)  # those stored before (by id) left out
            self.popularity.add(catalog.index[event.item_id] for event in stored)
        finally:
            self.write_lock.release()
        return len(stored)

    def upsert_items(self, records: Sequence[ItemRecord]) -> dict[str, int]:
        """Add or replace catalog items. New items are encoded and recommendable at once; stock and
        price changes apply to the next answer."""
        records = checked_items(records)
        with self.write_lock:
            staged = self._stage_items(records)  # encoded before anything is stored or shown
            created, updated = self.store.upsert_items(records)
            self._publish_items(staged)
        return {"created": created, "updated": updated}

    def apply_items(self, records: list[ItemRecord]) -> None:
        """Publish items another replica stored (`replication`): as `upsert_items`, without storing."""
        with self.write_lock:
            self._publish_items(self._stage_items(records))

    def _stage_items(self, records: list[ItemRecord]) -> StagedItems:
        return self.text.stage(self.catalog, records)

    def _publish_items(self, staged: StagedItems) -> None:
        """Make staged items readable: first every structure a read needs grows (vectors, lexical
        entries, popularity, the model's position map), then the catalog snapshot that names the new
        items is published in one assignment. Callers hold the write lock."""
        self.text.apply(staged)
        added = len(staged.added)
        served = self._served
        if added:
            self.popularity.grow(added)
            served.grow(added)
        if added or staged.changed:
            served.place_cold(np.array(staged.added + staged.changed, dtype=np.int64), self.text.index)
        self._catalog.publish(staged.snapshot)
        self.popularity.refresh()

    def delete_user(self, user_id: str) -> dict:
        """Remove a shopper's events and state everywhere shelfwise keeps them; says what it removed."""
        with self.write_lock:
            report = self.store.delete_user(user_id)
            if not report.found:
                raise UnknownIdError(f"Unknown shopper {user_id!r}.")
            catalog = self.catalog
            self.popularity.remove(catalog.index[item] for _, item in report.removed if item in catalog.index)
            self.event_counts.forget(report.removed)  # what the next popularity refresh reads
            self._served.forget_queries()  # nothing derived from their history stays
            removed = {"store_events": report.events, "store_profile": report.profile}
            removed.update({f"store_{name}": count for name, count in report.extra.items()})
            if self.forget_in_model_dir:
                with self.model_files_lock:
                    removed.update(self._served.forget_user(user_id))
            # told to the other replicas once the folder no longer holds the shopper: one that
            # shares it then finds them gone there, and erases them only from its own memory
            payload = {"user_sha256": user_hash(user_id), **EventCounts.deletion_payload(report.removed)}
            self.store.record_change("user_deleted", payload)
        return {"user_id": user_id, "removed": removed}

    # ------------------------------------------------------------------------------- reads
    def has_user(self, user_id: str) -> bool:
        return self.store.has_user(user_id)

    def shopper_events(self, user_id: str | None) -> list[EventRecord]:
        """The shopper's latest events, oldest first (at most `max_history`); none for nobody, for a
        shopper the store has no event of (a first visit) and for a deleted one: lists for them are
        what every newcomer gets."""
        return [] if user_id is None else self.store.user_events(user_id, limit=self.max_history)

    def item(self, item_id: str) -> ItemRecord:
        """One catalog item (`UnknownIdError` for an id the catalog does not hold)."""
        return (catalog := self.catalog).records[catalog.positions_of([item_id], field_name="item_id")[0]]

    def positions_of(self, item_ids: Iterable[str], *, field_name: str = "items") -> np.ndarray:
        """Catalog positions of item ids (see `CatalogSnapshot.positions_of`)."""
        return self.catalog.positions_of(item_ids, field_name=field_name)

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
        """A shopper's top-k (a newcomer's list for a shopper with no events: `shopper_events`)."""
        return self.recommend_events(
            self.shopper_events(user_id),
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
        check_list_options(k, diversity, outside_share, min_categories)
        crossing = min_categories > 1 or outside_share > 0
        served = self._served
        catalog = self.catalog
        history = [(catalog.index[e.item_id], e.event_type) for e in events if e.item_id in catalog.index]
        positions = np.array([p for p, _ in history], dtype=np.int64)
        excluded = set()
        if exclude_seen:
            excluded.update(positions.tolist())
        elif exclude_purchased:
            excluded.update(p for p, kind in history if kind == "purchase")
        filters = filters or Filters()
        mask = self.allowed(catalog, filters)
        if excluded:
            mask[np.fromiter(excluded, dtype=np.int64)] = False
        depth = max(k * 20, 200) if crossing else (k * 4 if diversity > 0 else k)
        ids, top = served.candidates(positions, mask, depth, self.text.view(), self.popularity.counts)
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
        return self.answer(catalog, ids, top, history)

    def similar(
        self, item_id: str, k: int = 10, *, filters: Filters | None = None, cross_category: bool = False
    ) -> list[Recommendation]:
        """Items like `item_id`: the model's similarity for items it knows, text for new ones. With
        `cross_category`, only items of other categories ("goes with": what shoppers take beside it);
        none where the item has no category, since then no other category can be told from its own."""
        check_k(k)
        catalog = self.catalog
        position = catalog.positions_of([item_id], field_name="item_id")[0]
        text = self.text.view()
        vectors = text.vectors
        scores = self._served.similar_scores(position, text, len(catalog))
        mask = self.allowed(catalog, filters or Filters())
        mask[position] = False
        if cross_category:  # other categories than its own; none for an item without a category
            categories = catalog.categories
            mask &= (categories != categories[position]) & (categories != "") & bool(categories[position])
        if scores is None:  # an item the model does not know: nearest by text (faiss HNSW when enabled)
            ids, top = self.text.index.search(vectors[position], k, mask)
        else:
            ids, top = masked_topk(scores, mask, k)
        answer = self.answer(catalog, ids, top, [(int(position), "view")])
        if cross_category:
            title = catalog.records[position].title or item_id
            reason = Reason("goes_with", f"goes with {title}", int(position))
            answer = [replace(r, reason=reason, _anchor=item_id) for r in answer]
        return answer

    def new_arrivals(
        self,
        user_id: str | None = None,
        k: int = 10,
        *,
        days: float | None = None,
        filters: Filters | None = None,
        events: Sequence[EventRecord] | None = None,
    ) -> list[Recommendation]:
        """Items created in the last `days` (default: `new_days`), ranked for the shopper (by the
        model and the shopper's text profile), or by popularity for nobody in particular. `events`:
        the shopper's, where the caller read them already (`shopper_events`)."""
        check_k(k)
        days = self.new_days if days is None else days
        history = self.shopper_events(user_id) if events is None else events
        catalog = self.catalog
        pairs = [(catalog.index[e.item_id], e.event_type) for e in history if e.item_id in catalog.index]
        positions = np.array([p for p, _ in pairs], dtype=np.int64)
        scores = self._served.catalog_scores(positions, len(catalog), self.text.view(), self.popularity.counts)
        mask = self.allowed(catalog, filters or Filters()) & self._new_mask(catalog, days)
        ids, top = masked_topk(scores, mask, k)
        return self.answer(catalog, ids, top, pairs)

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        user_id: str | None = None,
        lexical_weight: float = SEARCH_LEXICAL_WEIGHT,
        personal_weight: float = SEARCH_PERSONAL_WEIGHT,
        filters: Filters | None = None,
        events: Sequence[EventRecord] | None = None,
    ) -> list[Recommendation]:
        """Hybrid search: BM25 over the catalog's words (misspelt words replaced by the nearest
        catalog word) fused with the encoder's cosine (synonyms, other languages), re-ranked by the
        shopper's taste vector when `user_id` is given (and they have events: `events`, where the
        caller read them already)."""
        check_k(k)
        text = checked_query(query, lexical_weight, personal_weight)
        history = self.shopper_events(user_id) if events is None else list(events)
        catalog = self.catalog
        mask = self.allowed(catalog, filters or Filters(in_stock=False))
        return search_catalog(
            self.text,
            catalog,
            text,
            history,
            mask,
            k=k,
            lexical_weight=lexical_weight,
            personal_weight=personal_weight,
        )

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
        self.store.replace_segments(result.rows(), result.assignments)
        return result

    def segments(self) -> list[dict]:
        """The saved segments (empty before `compute_segments`)."""
        return [segment_view(row) for row in self.store.list_segments()]

    def segment(self, segment_id: int, *, limit: int = 100, offset: int = 0) -> dict:
        """One saved segment with a page of its shoppers' ids."""
        return segment_page(self.store, segment_id, limit=limit, offset=offset)

    def users(self, prefix: str = "", limit: int = 20) -> list[UserSummary]:
        """Shoppers whose id starts with `prefix`, most recently active first."""
        if not 1 <= limit <= 1000:
            raise ConfigError(f"limit must be in [1, 1000]. Got {limit!r} instead.")
        return self.store.list_users(prefix, limit)

    # ------------------------------------------------------------------------------- answer stages
    @staticmethod
    def allowed(catalog: CatalogSnapshot, filters: Filters) -> np.ndarray:
        """The catalog positions `filters` allow (a fresh mask the caller may change)."""
        return filters.mask(in_stock=catalog.in_stock, categories=catalog.categories, prices=catalog.prices)

    def _new_mask(self, catalog: CatalogSnapshot, days: float | None = None) -> np.ndarray:
        return self._served.new_mask(catalog.recent(self.new_days if days is None else days))

    def answer(
        self, catalog: CatalogSnapshot, ids: np.ndarray, scores: np.ndarray, history: list[tuple[int, str]]
    ) -> list[Recommendation]:
        """Ranked catalog positions as the answer: records and reasons (see `answers.build_answer`)."""
        popular = self.popularity.popular(len(catalog))
        return build_answer(
            catalog, ids, scores, history, vectors=self.text.vectors, new=self._new_mask(catalog), popular=popular
        )

    def stats(self) -> dict:
        served = self._served
        return {
            "model": served.model.name,
            "model_version": served.version,
            "model_dir": str(served.model_dir),
            "items": len(self.catalog),
            "items_known_to_model": int(served.model.n_items_),
            "store": self.store.url,
            "schema_version": self.store.schema_version(),
            "pid": os.getpid(),
            "change_id": self.change_id,
            "text_ready": self.wait_until_text_ready(timeout=0),
        }

    def wait_until_text_ready(self, timeout: float | None = None) -> bool:
        """Wait for what a start from the serving artifacts loads in the background; True once loaded."""
        if self._warming is not None:
            self._warming.join(timeout)
        return self._warming is None or not self._warming.is_alive()

    def close(self) -> None:
        if self._warming is not None:  # a thread inside torch at interpreter exit aborts the process
            self._warming.join()
        if self._owns_store:
            self.store.close()
