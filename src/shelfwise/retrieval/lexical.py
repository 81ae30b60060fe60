"""Lexical retrieval: Okapi BM25 over the catalog's words, with a spelling fallback for query words
the catalog never uses ("sofá", "couhc" → the nearest catalog word)."""

from __future__ import annotations

import difflib
import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Words too common in any language of shop text to say anything about a product.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "with",
        "your",
        "you",
        "our",
        "we",
        "not",
        "no",
        "all",
        "can",
        "will",
        "was",
        "were",
        "one",
        "two",
        "new",
        "more",
        "most",
        "very",
        "per",
        "via",
        "into",
        "than",
        "then",
        "also",
    ]
)


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    neighbouring letters each count one."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def tokenize(text: str) -> list[str]:
    """Casefolded words without accents (``Sofá-Bed`` → ``sofa``, ``bed``)."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WORD.findall(plain.casefold())


@dataclass
class _Built:
    """The weights and everything derived from them, built together and never changed afterwards
    (but for the caches of spellings), so a search reads one consistent state while documents change."""

    weights: sp.csc_matrix
    vocabulary: dict[str, int]
    terms: list[str]
    document_frequency: np.ndarray
    idf: np.ndarray
    neighbours: dict[str, list[int]] | None = None
    corrected: dict[str, list[str]] = field(default_factory=dict)


class LexicalIndex:
    """BM25 (``k1``, ``b``) over documents at positions ``0..n-1``; documents can be added and
    replaced, and the weight matrix is rebuilt on the next search after a change.

    The documents are a matrix of term counts (`save` writes it, `open` maps it back, with the
    weights built from it) plus the documents set since, so a rebuild is a few sparse-matrix
    operations, not a pass over every document's words."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._lock = threading.Lock()
        self._base: sp.csr_matrix | None = None  # term counts of documents 0..n_base-1
        self._docs: dict[int, Counter] = {}  # documents set since the base (new and replaced)
        self._n = 0
        self._vocabulary: dict[str, int] = {}
        self._built: _Built | None = None
        #: Goes up with every change, so callers can cache what they derive from the index.
        self.version = 0

    def __len__(self) -> int:
        return self._n

    def set(self, positions: Sequence[int], texts: Sequence[str]) -> None:
        """Index `texts` at `positions` (new positions must follow the last one without gaps)."""
        with self._lock:
            for position, text in zip(positions, texts, strict=True):
                if not 0 <= position <= self._n:
                    raise IndexError(f"position {position} is past the end ({self._n} documents)")
                counts = Counter(tokenize(text))
                self._docs[position] = counts
                self._n = max(self._n, position + 1)
                for term in counts:
                    self._vocabulary.setdefault(term, len(self._vocabulary))
            self._built = None
            self.version += 1

    def _counts(self) -> sp.csr_matrix:
        """Every document's term counts (callers hold the lock)."""
        width = len(self._vocabulary)
        rows, cols, counts = [], [], []
        for row, doc in self._docs.items():
            for term, count in doc.items():
                rows.append(row)
                cols.append(self._vocabulary[term])
                counts.append(count)
        changed = sp.csr_matrix((np.array(counts, np.float64), (rows, cols)), shape=(self._n, width))
        if self._base is None:
            return changed
        base = self._base.astype(np.float64)
        base.resize((self._n, width))
        if self._docs:
            keep = np.ones(self._n, dtype=bool)
            keep[np.fromiter(self._docs, dtype=np.int64, count=len(self._docs))] = False
            base = sp.diags(keep.astype(np.float64)) @ base
        return (base + changed).tocsr()

    def _weigh(self, tf: sp.csr_matrix) -> _Built:
        shape = tf.shape
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        average = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
        df = np.bincount(tf.indices, minlength=shape[1])
        n = max(shape[0], 1)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        norm = self.k1 * (1.0 - self.b + self.b * lengths / average)
        tf = tf.tocoo()
        saturated = tf.data * (self.k1 + 1.0) / (tf.data + norm[tf.row])
        weights = sp.csc_matrix((saturated * idf[tf.col], (tf.row, tf.col)), shape=shape)
        terms = sorted(self._vocabulary, key=self._vocabulary.__getitem__)
        return _Built(weights, dict(self._vocabulary), terms, df, idf)

    def _matrix(self) -> _Built:
        with self._lock:
            if self._built is None:
                self._built = self._weigh(self._counts())
            return self._built

    def save(self, folder: str | Path) -> None:
        """Write the term counts, the weights and the vocabulary into `folder` (for `open`)."""
        built = self._matrix()
        with self._lock:
            tf = self._counts()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "tf_data": tf.data.astype(np.float32),
            "tf_indices": tf.indices.astype(np.int32),
            "tf_indptr": tf.indptr.astype(np.int64),
            "w_data": built.weights.data,
            "w_indices": built.weights.indices.astype(np.int32),
            "w_indptr": built.weights.indptr.astype(np.int64),
            "df": built.document_frequency,
            "idf": built.idf,
        }
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(array))
        meta = {"documents": tf.shape[0], "k1": self.k1, "b": self.b, "terms": built.terms}
        (folder / "lexical.json").write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def open(cls, folder: str | Path) -> LexicalIndex:
        """An index written by `save`, its arrays memory-mapped read-only."""
        folder = Path(folder)
        meta = json.loads((folder / "lexical.json").read_text())
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}
        index = cls(k1=meta["k1"], b=meta["b"])
        terms: list[str] = meta["terms"]
        shape = (int(meta["documents"]), len(terms))
        index._vocabulary = {term: column for column, term in enumerate(terms)}
        index._n = shape[0]
        index._base = sp.csr_matrix((arrays["tf_data"], arrays["tf_indices"], arrays["tf_indptr"]), shape=shape)
        weights = sp.csc_matrix((arrays["w_data"], arrays["w_indices"], arrays["w_indptr"]), shape=shape)
        index._built = _Built(weights, dict(index._vocabulary), terms, arrays["df"], arrays["idf"])
        return index

    @staticmethod
    def _correct(built: _Built, word: str) -> str | None:
        """The catalog word a misspelt `word` most likely means: within one edit (two from 8 letters
        on), fewest edits first, then the word in the most documents."""
        terms, df, neighbours = built.terms, built.document_frequency, LexicalIndex._spelling(built)
        limit = 1 if len(word) < 8 else 2
        candidates = {c for key in {word, *_deletes(word)} for c in neighbours.get(key, ())}
        scored = []
        for column in candidates:
            distance = edit_distance(word, terms[column])
            if distance <= limit:
                scored.append((distance, -int(df[column]), terms[column]))
        if scored:
            return min(scored)[2]
        if len(word) >= 8:
            close = difflib.get_close_matches(word, terms, n=1, cutoff=0.8)
            return close[0] if close else None
        return None

    @staticmethod
    def _spelling(built: _Built) -> dict[str, list[int]]:
        """A deletion index: each catalog word under itself and its one-letter deletes (numbers and
        model codes are left out: nobody misspells a SKU into another one)."""
        neighbours = built.neighbours
        if neighbours is None:
            neighbours = {}
            for column, term in enumerate(built.terms):
                if len(term) >= 3 and term not in STOPWORDS and not any(ch.isdigit() for ch in term):
                    for key in {term, *_deletes(term)}:
                        neighbours.setdefault(key, []).append(column)
            built.neighbours = neighbours
        return neighbours

    def prepare(self) -> None:
        """Build now what the first search would otherwise build (the weights and the spelling index)."""
        self._spelling(self._matrix())

    def query_terms(self, query: str) -> list[str]:
        """The query's words as the catalog spells them: known words as they are, unknown ones
        replaced by the closest catalog word (when one is close enough), stopwords dropped."""
        return self._query_terms(self._matrix(), query)

    def _query_terms(self, built: _Built, query: str) -> list[str]:
        known = built.corrected.get(query)
        if known is not None:
            return known
        out = []
        for word in tokenize(query):
            if word in STOPWORDS:
                continue
            if word in built.vocabulary:
                out.append(word)
            elif len(word) >= 4:
                corrected = self._correct(built, word)
                if corrected is not None:
                    out.append(corrected)
        terms = list(dict.fromkeys(out))
        if len(built.corrected) >= 4096:  # a plain bound: queries repeat less than items
            built.corrected.clear()
        built.corrected[query] = terms
        return terms

    def scores(self, query: str) -> np.ndarray:
        """BM25 of every document for `query` (zeros where no query word occurs)."""
        built = self._matrix()
        terms = self._query_terms(built, query)
        if not terms:
            return np.zeros(built.weights.shape[0])
        columns = [built.vocabulary[t] for t in terms]
        return np.asarray(built.weights[:, columns].sum(axis=1)).ravel()

    def match(self, query: str, raw: np.ndarray | None = None) -> np.ndarray:
        """How well each document matches `query` on a scale that does not depend on the query: BM25
        divided by the sum of the query words' IDF (what a document holding each word once, at average
        length, scores), times the share of the query's content words the catalog knows (after
        spelling correction). A document with every word once scores about 1 (a little more when it
        is short or repeats them: BM25's order is kept), a half match about 0.5. `raw`: this query's
        `scores`, where already computed."""
        built = self._matrix()
        words = [w for w in tokenize(query) if w not in STOPWORDS]
        terms = self._query_terms(built, query)
        size = built.weights.shape[0] if raw is None else len(raw)
        if not terms or not words:
            return np.zeros(size)
        columns = [built.vocabulary[t] for t in terms]
        if raw is None:
            raw = np.asarray(built.weights[:, columns].sum(axis=1)).ravel()
        known = min(len(terms) / len(words), 1.0)
        return raw / float(built.idf[columns].sum()) * known

    def vocabulary(self, *, min_df: int = 1, max_terms: int = 5000) -> list[str]:
        """Content words (3+ letters, not numbers or stopwords), most documents first."""
        built = self._matrix()
        df = built.document_frequency
        order = np.argsort(-df, kind="stable")
        out = []
        for column in order:
            if df[column] < min_df:
                break
            term = built.terms[column]
            if len(term) >= 3 and term.isalpha() and term not in STOPWORDS:
                out.append(term)
                if len(out) >= max_terms:
                    break
        return out
