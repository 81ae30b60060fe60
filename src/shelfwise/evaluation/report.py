"""A self-contained HTML report of evaluation records: the results table and plots (inline SVG).

Plots: the main metric per model, NDCG@K against K, warm against cold slices, and popularity bias
against catalog coverage. Records need the ``analysis`` of `evaluate(include_analysis=True)`; the
report opens with no internet connection (no scripts, fonts or images from elsewhere).
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shelfwise.errors import ConfigError

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;
color:#1d2330}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}td,th{border:1px solid #dde;padding:.3rem .6rem;
text-align:right}th:first-child,td:first-child{text-align:left}tr.best td{font-weight:600;background:#eef6ee}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(30rem,1fr));gap:1rem}
figure{margin:0;border:1px solid #eee;padding:.5rem}figcaption{font-size:.85rem;color:#555}
.meta{color:#555;font-size:.9rem}
"""


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(title: str, svg: str, caption: str, slug: str) -> str:
    return (
        f'<figure class="plot" data-plot="{slug}" aria-label="{html.escape(title)}">{svg}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _plots(rows: list[dict], metric: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    out = []
    fig, ax = plt.subplots(figsize=(6, 3.2))
    values = [r["metrics"].get(metric) or 0.0 for r in rows]
    ax.bar(names, values, color="#4c72b0")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per model")
    ax.tick_params(axis="x", rotation=30)
    out.append(_figure("metric per model", _svg(fig), f"Test {metric} of each model.", "metric"))

    analysed = [r for r in rows if r.get("analysis")]
    if analysed:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for r in analysed:
            curve = r["analysis"]["ndcg_at"]
            ks = [int(k) for k in curve]
            ax.plot(ks, [curve[str(k)] for k in ks], marker="o", label=r["model"])
        ax.set_xlabel("K")
        ax.set_ylabel("NDCG@K")
        ax.set_xscale("log")
        ax.set_title("NDCG@K against K")
        ax.legend(fontsize=7, ncol=2)
        out.append(_figure("ndcg at k", _svg(fig), "NDCG of the top-K lists for several K.", "ndcg-at-k"))

        slice_names = list(dict.fromkeys(s for r in analysed for s in r["analysis"]["slices"]))
        if slice_names:
            fig, ax = plt.subplots(figsize=(6, 3.2))
            width = 0.8 / len(slice_names)
            for j, slice_name in enumerate(slice_names):
                heights = [r["analysis"]["slices"].get(slice_name) or 0.0 for r in analysed]
                ax.bar([i + j * width for i in range(len(analysed))], heights, width, label=slice_name)
            ax.set_xticks([i + width * (len(slice_names) - 1) / 2 for i in range(len(analysed))])
            ax.set_xticklabels([r["model"] for r in analysed], rotation=30)
            ax.set_ylabel(analysed[0]["analysis"]["slice_metric"])
            ax.set_title("warm against cold")
            ax.legend(fontsize=7)
            out.append(
                _figure(
                    "warm and cold", _svg(fig), "Warm against cold slices (PROTOCOLS.md's cold definitions).", "slices"
                )
            )

        fig, ax = plt.subplots(figsize=(6, 3.2))
        for r in analysed:
            a = r["analysis"]
            if a["popularity_percentile"] is None:
                continue
            ax.scatter(a["coverage"], a["popularity_percentile"], s=40)
            ax.annotate(
                r["model"],
                (a["coverage"], a["popularity_percentile"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel("catalog coverage of the top-K lists")
        ax.set_ylabel("mean popularity percentile")
        ax.set_title("popularity bias against coverage")
        out.append(
            _figure(
                "popularity and coverage",
                _svg(fig),
                "Right: more of the catalog is shown; up: lists lean on popular items (1 = the most popular).",
                "popularity",
            )
        )
    return out


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render_report(records: Sequence[dict[str, Any]], *, title: str = "shelfwise evaluation", meta: str = "") -> str:
    """The report as one HTML string."""
    if not records:
        raise ConfigError("The report needs at least one evaluation record.")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(meta or 'generated ' + _now())}</p>",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == dataset]
        metric_names = list(rows[0]["metrics"])
        metric = metric_names[0]
        best = max(rows, key=lambda r: r["metrics"].get(metric) or 0.0)["model"]
        parts.append(
            f"<h2>{html.escape(dataset)} ({html.escape(rows[0]['protocol'].upper())}, {rows[0]['users']} users)</h2>"
        )
        parts.append("<table><thead><tr><th>model</th>")
        parts += [f"<th>{html.escape(m)}</th>" for m in metric_names]
        parts.append("<th>fit s</th></tr></thead><tbody>")
        for r in rows:
            cells = "".join(
                "<td>–</td>" if r["metrics"].get(m) is None else f"<td>{r['metrics'][m]:.4f}</td>" for m in metric_names
            )
            css = " class='best'" if r["model"] == best else ""
            parts.append(f"<tr{css}><td>{html.escape(r['model'])}</td>{cells}<td>{r['fit_seconds']:.1f}</td></tr>")
        parts.append("</tbody></table><div class='plots'>")
        parts += _plots(rows, metric)
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _write(text: str, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_report(records: Sequence[dict[str, Any]], path: str | os.PathLike[str], **options: Any) -> Path:
    """Write the report to `path` (atomically)."""
    return _write(render_report(records, **options), path)


def _training_plot(phases: list[dict], metric: str | None, best_epoch: int | None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for phase in phases:
        epochs = [row["epoch"] for row in phase["epochs"]]
        ax.plot(epochs, [row["loss"] for row in phase["epochs"]], marker="o", label=f"loss ({phase['name']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    rows = [row for phase in phases for row in phase["epochs"] if metric and metric in row]
    if rows:
        right = ax.twinx()
        right.plot([r["epoch"] for r in rows], [r[metric] for r in rows], color="#c44e52", marker="s", label=metric)
        right.set_ylabel(str(metric))
        if best_epoch is not None:
            right.axvline(best_epoch, color="#888", linestyle="--", linewidth=1)
        right.legend(loc="lower right", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("training curve")
    return _svg(fig)


#: Why a training phase stopped (`TrainResult.stopped`), as a page says it.
PHASE_STOPS = {
    "epochs": "every epoch it was given",
    "patience": "stopped by patience",
    "time budget": "cut by the time budget",
}


def phase_summary(phase: dict[str, Any]) -> str:
    """One training phase of a training log in words: its name, epochs run and why it stopped."""
    stopped = phase.get("stopped")
    why = f" ({PHASE_STOPS.get(stopped, stopped)})" if stopped else ""
    whole = sum("share of the epoch" not in row for row in phase["epochs"])
    part = [row["share of the epoch"] for row in phase["epochs"] if "share of the epoch" in row]
    more = f" and {part[0]:.0%} of another" if part else ""
    return f"{phase['name']} phase {whole} epochs{more}{why}"


def render_training_report(summary: dict[str, Any]) -> str:
    """A training summary as one self-contained HTML page: the facts, and the training and
    validation curves where the model learns in epochs."""
    log = summary.get("training") or {}
    phases = [phase for phase in log.get("phases", []) if phase.get("epochs")]
    title = f"shelfwise train: {summary['model']}"
    facts = {
        "data": summary.get("data"),
        "users × items": f"{summary.get('users')} × {summary.get('items')}",
        "fit time": f"{summary['fit_seconds']:.1f} s",
        "peak memory": f"{summary['peak_memory_mb']} MB",
        "best epoch": log.get("best_epoch"),
        "fit time by step": ", ".join(f"{step} {value} s" for step, value in log.get("seconds", {}).items()) or None,
        "final phase": log.get("final_phase"),
        "phases": "; ".join(phase_summary(phase) for phase in phases) or None,
        "parameters": ", ".join(f"{k}={v}" for k, v in summary.get("params", {}).items()),
    }
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>generated {_now()}</p><table><tbody>",
    ]
    for name, value in facts.items():
        if value is not None:
            parts.append(f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>")
    parts.append("</tbody></table>")
    if phases:
        metric = log.get("metric")
        caption = "Training loss per epoch" + (
            f"; {metric} on the held-out last items per epoch (dashed: the best epoch, used for the final fit)."
            if metric
            else "."
        )
        parts.append("<div class='plots'>")
        plot = _training_plot(phases, metric, log.get("best_epoch"))
        parts.append(_figure("training curve", plot, caption, "training"))
        parts.append("</div>")
    else:
        parts.append("<p class='meta'>This model is fitted in closed form or by a solver without epochs: no curve.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_training_report(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write `render_training_report(summary)` to `path` (atomically)."""
    return _write(render_training_report(summary), path)
