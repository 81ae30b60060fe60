"""Search benchmark: lexical, semantic, hybrid and personalised hybrid search on the public data sets.

The query set (reproducible, no hand-written queries): for each evaluated shopper of a PROTOCOLS.md
split, the held-out item (P1: the last item; P2: the first item taken after the cutoff, in time
order) is the one relevant result, and the query is two content words of its title (casefolded,
accents removed; no stopwords, numbers or words under 3 letters), drawn at random with a seed per
shopper and kept in title order (titles with a single content word give a one-word query). Shoppers
whose held-out item has no title are left out (counted). Personalisation sees only the shopper's
history in the split's fitted data (their taste vector over the items' text vectors).

The engine's own code ranks: BM25 over the composed item text (`retrieval.lexical`), the encoder's
cosine, and their fusion with the shopper's affinity (`engine.understanding.rank_search`), over the
union of the top 200 of each. The fusion weights are chosen on the tuning split (MRR), then the test
split is scored once. Metrics: MRR (reciprocal rank within the top 100, else 0) and Recall@10.

    python benchmarks/search.py                           # all data sets with titles
    python benchmarks/search.py --datasets movielens-100k
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import available_datasets, run_meta, write_results
from shelfwise.data.adapters import KNOWN_DATASETS, load_dataset
from shelfwise.engine.understanding import noise_floor, rank_search, taste_vector
from shelfwise.evaluation import make_splits
from shelfwise.retrieval.lexical import STOPWORDS, LexicalIndex, tokenize
from shelfwise.text import create_encoder
from shelfwise.text.item_text import ItemTextTemplate
from shelfwise.text.pipeline import encode_items, encode_texts

RESULTS = Path(__file__).resolve().parent / "results"
DEPTH = 200  # candidates from each of lexical and semantic retrieval, as in Engine.search
LIST = 100  # ranks beyond this count as a miss for MRR
LEXICAL_GRID = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0)
PERSONAL_GRID = (0.05, 0.1, 0.2, 0.3, 0.5)
METHODS = ("lexical", "semantic", "hybrid", "personalised hybrid")


def query_words(title: str, rng: np.random.Generator, count: int = 2) -> str | None:
    words = [w for w in tokenize(title) if len(w) >= 3 and w.isalpha() and w not in STOPWORDS]
    words = list(dict.fromkeys(words))
    if not words:
        return None
    if len(words) > count:
        keep = np.sort(rng.choice(len(words), count, replace=False))
        words = [words[i] for i in keep]
    return " ".join(words)


def with_typo(query: str, rng: np.random.Generator) -> str:
    """The query with two neighbouring letters swapped inside its longest word (a common typo)."""
    words = query.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    if len(word) >= 4:
        at = int(rng.integers(1, len(word) - 2))
        words[longest] = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return " ".join(words)


def build_queries(split, titles: list, seed: int) -> tuple[list[dict], int]:
    """One query per evaluated shopper: (user, relevant item, words); and how many were left out."""
    queries, skipped = [], 0
    for user, targets in zip(split.users, split.targets, strict=True):
        target = int(targets[0])
        title = titles[target]
        words = query_words(title, np.random.default_rng([seed, int(user)])) if isinstance(title, str) else None
        if words is None:
            skipped += 1
            continue
        rng = np.random.default_rng([seed, int(user), 1])
        queries.append({"user": int(user), "target": target, "query": words, "typo": with_typo(words, rng)})
    return queries, skipped


class Searcher:
    """What Engine.search computes, for a fixed catalog: candidates and the parts of the score."""

    def __init__(self, texts: list[str], vectors: np.ndarray, encoder) -> None:
        self.vectors = vectors
        self.lexical = LexicalIndex()
        self.lexical.set(range(len(texts)), texts)
        self.encoder = encoder
        self.floor = noise_floor(vectors, encoder.encode)

    def prepare(self, queries: list[dict], split, *, field: str = "query") -> list[dict]:
        encoded = encode_texts([q[field] for q in queries], self.encoder).vectors
        sequences = split.train.sequences()
        prepared = []
        for query, vector in zip(queries, encoded, strict=True):
            bm25 = self.lexical.scores(query[field])
            lexical = self.lexical.match(query[field], bm25)
            semantic = self.vectors @ vector
            semantic_ids = np.argpartition(-semantic, min(DEPTH, len(semantic) - 1))[:DEPTH]
            positive = np.flatnonzero(bm25 > 0)
            lexical_ids = positive[np.argsort(-bm25[positive], kind="stable")[:DEPTH]]
            history = sequences[query["user"]]
            prepared.append(
                {
                    **query,
                    "vector": vector,
                    "lexical": lexical,
                    "lexical_ids": lexical_ids,
                    "candidates": np.union1d(semantic_ids, lexical_ids),
                    "taste": taste_vector(history, ["view"] * len(history), self.vectors),
                }
            )
        return prepared

    def ranks(self, prepared: list[dict], method: str, lexical_weight: float, personal_weight: float) -> np.ndarray:
        """The 1-based rank of each query's relevant item (inf where it is not in the top `LIST`)."""
        out = np.full(len(prepared), np.inf)
        for row, q in enumerate(prepared):
            if method == "lexical":
                ids = q["lexical_ids"][:LIST]
            else:
                ids, _, _ = rank_search(
                    q["candidates"],
                    q["vector"],
                    q["lexical"],
                    self.vectors,
                    q["taste"] if method == "personalised hybrid" else None,
                    k=LIST,
                    lexical_weight=0.0 if method == "semantic" else lexical_weight,
                    personal_weight=personal_weight if method == "personalised hybrid" else 0.0,
                    semantic_floor=self.floor,
                )
            hit = np.flatnonzero(ids == q["target"])
            if len(hit):
                out[row] = hit[0] + 1
        return out


def metrics(ranks: np.ndarray) -> dict[str, float]:
    return {"mrr": float(np.mean(1.0 / ranks)), "recall@10": float(np.mean(ranks <= 10))}


def run_dataset(name: str, seed: int) -> dict:
    started = time.perf_counter()
    dataset = load_dataset(name)
    protocol = KNOWN_DATASETS[name]
    splits = make_splits(dataset, protocol)
    template = ItemTextTemplate()
    texts = template.compose_all(dataset.items)
    encoder = create_encoder()
    vectors = encode_items(dataset.items, encoder, template=template).vectors
    searcher = Searcher(texts, vectors, encoder)
    titles = dataset.items["title"].tolist()
    record: dict = {"dataset": name, "protocol": protocol, "items": dataset.n_items}
    prepared = {}
    for stage in ("tune", "test"):
        split = splits[stage]
        queries, skipped = build_queries(split, titles, seed)
        prepared[stage] = searcher.prepare(queries, split)
        if stage == "test":
            prepared["typo"] = searcher.prepare(queries, split, field="typo")
            record["typo_examples"] = [q["typo"] for q in queries[:5]]
        record[f"{stage}_queries"], record[f"{stage}_skipped"] = len(queries), skipped
        record.setdefault("examples", [q["query"] for q in queries[:5]])
    trials = []
    for lexical_weight in LEXICAL_GRID:
        hybrid = metrics(searcher.ranks(prepared["tune"], "hybrid", lexical_weight, 0.0))
        trials.append({"method": "hybrid", "lexical_weight": lexical_weight, **hybrid})
        for personal_weight in PERSONAL_GRID:
            personal = metrics(searcher.ranks(prepared["tune"], "personalised hybrid", lexical_weight, personal_weight))
            trials.append(
                {
                    "method": "personalised hybrid",
                    "lexical_weight": lexical_weight,
                    "personal_weight": personal_weight,
                    **personal,
                }
            )
    best_hybrid = max((t for t in trials if t["method"] == "hybrid"), key=lambda t: t["mrr"])
    best_personal = max((t for t in trials if t["method"] == "personalised hybrid"), key=lambda t: t["mrr"])
    chosen = {
        "lexical": {},
        "semantic": {},
        "hybrid": {"lexical_weight": best_hybrid["lexical_weight"]},
        "personalised hybrid": {
            "lexical_weight": best_personal["lexical_weight"],
            "personal_weight": best_personal["personal_weight"],
        },
    }
    record["results"] = []
    for method in METHODS:
        config = chosen[method]
        ranks = searcher.ranks(
            prepared["test"], method, config.get("lexical_weight", 0.0), config.get("personal_weight", 0.0)
        )
        typo = searcher.ranks(
            prepared["typo"], method, config.get("lexical_weight", 0.0), config.get("personal_weight", 0.0)
        )
        typo_metrics = {f"typo_{key}": value for key, value in metrics(typo).items()}
        record["results"].append({"method": method, "config": config, **metrics(ranks), **typo_metrics})
        print(f"  {name} {method}: {record['results'][-1]}", flush=True)
    record["tuning_trials"] = trials
    record["seconds"] = time.perf_counter() - started
    return record


def markdown(records: list[dict], meta: dict) -> str:
    lines = [
        "# Search benchmark",
        "",
        f"Measured {meta['date']} on {meta['machine']} ({meta['cores']} cores), Python {meta['python']}, "
        f"by `{meta['command']}` in {meta['seconds']:.0f} s.",
        "",
        "Query set: for each evaluated shopper of the PROTOCOLS.md split, the held-out item is the one",
        "relevant result and the query is two content words of its title, drawn at random (seeded per",
        "shopper) and kept in title order; shoppers whose item has no title are left out. Lexical: BM25",
        "over the composed item text. Semantic: all-MiniLM-L6-v2 cosine. Hybrid: the cosine and the",
        "lexical match (BM25 over the sum of the query words' IDF: about 1 for a full match) over the",
        "union of their top 200, mixed by `lexical_weight`. Personalised: plus `personal_weight` × the cosine of the",
        "shopper's taste vector (their fitted history only). Weights chosen on the tuning split by MRR;",
        "the test split scored once. MRR counts ranks within the top 100.",
        "As the service does (`rank_search`), semantic, hybrid and personalised rankings keep only the",
        "items that match: a query word, or a cosine above the catalog's noise floor (the 98th",
        "percentile of the best cosine that 128 random letter strings reach in it); the taste re-orders",
        "within two tiers (items at least half as relevant as the best match first, then the rest).",
        "The typo columns score the same test queries with two neighbouring letters swapped inside the",
        "longest word (same weights).",
        "`python benchmarks/search.py` re-measures it; the docstring there has the details.",
        "",
    ]
    for record in records:
        lines += [
            f"## {record['dataset']} ({record['protocol'].upper()}, {record['test_queries']} test queries, "
            f"{record['items']} items)",
            "",
            "| method | MRR | Recall@10 | MRR, one typo | Recall@10, one typo | chosen on the tuning split |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for row in record["results"]:
            config = ", ".join(f"{k}={v}" for k, v in row["config"].items()) or "–"
            figures = " | ".join(f"{row[key]:.4f}" for key in ("mrr", "recall@10", "typo_mrr", "typo_recall@10"))
            lines.append(f"| {row['method']} | {figures} | {config} |")
        by = {row["method"]: row for row in record["results"]}
        gain = by["personalised hybrid"]["mrr"] - by["lexical"]["mrr"]
        verdict = f"is ahead of lexical-only by {gain:.4f}" if gain > 0 else f"trails lexical-only by {-gain:.4f}"
        lines += [
            "",
            f"Personalised hybrid {verdict} MRR. "
            f"Left out (no title): {record['test_skipped']} test shoppers. "
            f"Example queries: {', '.join(repr(q) for q in record['examples'])}; "
            f"with a typo: {', '.join(repr(q) for q in record['typo_examples'])}.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(KNOWN_DATASETS))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    records = [run_dataset(name, args.seed) for name in available_datasets(args.datasets)]
    if not records:
        return 0
    meta = run_meta("search.py", argv, seconds=time.perf_counter() - started)
    write_results(args.out, "search", {"meta": meta, "records": records}, markdown(records, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
