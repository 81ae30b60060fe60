"""Personalised hybrid search over the catalog: BM25 over the catalog's words (misspelt words
replaced by the nearest catalog word) fused with the encoder's cosine (synonyms, other languages),
re-ranked by the shopper's taste vector."""

from __future__ import annotations

import numpy as np

from shelfwise.engine.answers import Recommendation
from shelfwise.engine.catalog import CatalogSnapshot
from shelfwise.engine.catalog_text import CatalogText
from shelfwise.engine.understanding import rank_search, taste_vector
from shelfwise.errors import ConfigError, EmptyQueryError
from shelfwise.ranking import masked_topk
from shelfwise.retrieval import Reason
from shelfwise.store import EventRecord

#: How many candidates each half of a hybrid search (lexical, semantic) brings at least.
SEARCH_DEPTH = 200
#: Defaults of `Engine.search`: the lexical share beside the semantic score, and the shopper's weight
#: (near what benchmarks/search.py chose on the tuning splits of the public data sets: search.md).
SEARCH_LEXICAL_WEIGHT = 0.7
SEARCH_PERSONAL_WEIGHT = 0.2
#: The longest query, in characters.
MAX_QUERY = 512


def checked_query(query: str | None, lexical_weight: float, personal_weight: float) -> str:
    """The query, stripped; an error that says what is wrong with it or the weights."""
    text = (query or "").strip()
    if not text:
        raise EmptyQueryError("q: the search query is empty; give a few words.")
    if len(text) > MAX_QUERY:
        raise ConfigError(f"q: at most {MAX_QUERY} characters, not {len(text)}.")
    for name, value in (("lexical_weight", lexical_weight), ("personal_weight", personal_weight)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1]. Got {value!r} instead.")
    return text


def search_catalog(
    text_of: CatalogText,
    catalog: CatalogSnapshot,
    query: str,
    history: list[EventRecord],
    mask: np.ndarray,
    *,
    k: int,
    lexical_weight: float,
    personal_weight: float,
) -> list[Recommendation]:
    """The best `k` allowed items (`mask`) of one catalog snapshot for a checked query, each with
    the reason: the query, and the shopper's taste where it lifted the item."""
    n = len(catalog)
    vectors = text_of.vectors[:n]
    query_vector = text_of.query_vector(query)
    depth = max(SEARCH_DEPTH, 4 * k)
    semantic_ids, _ = text_of.index.search(query_vector, depth, mask)
    bm25 = text_of.lexical.scores(query)[:n]
    lexical_ids, _ = masked_topk(np.where(bm25 > 0, bm25, -np.inf), mask[: len(bm25)], depth)
    lexical = text_of.lexical.match(query, bm25)
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
        semantic_floor=text_of.semantic_floor(),
    )
    middle = None if taste is None else float(np.median(vectors[candidates] @ taste))
    quoted = query if len(query) <= 40 else query[:39] + "…"
    out = []
    for row, position in enumerate(ids.tolist()):
        personal = affinity is not None and personal_weight > 0 and affinity[row] >= middle
        reason = Reason("search", f'matches "{quoted}"' + (" and your taste" if personal else ""))
        out.append(Recommendation(catalog.ids[position], float(scores[row]), reason, catalog.records[position]))
    return out
