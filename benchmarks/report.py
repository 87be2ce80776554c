"""Turn the report of ``python benchmarks/run.py all`` into the docs' benchmark page.

``python benchmarks/report.py [REPORT] [--docs DIR]`` reads REPORT (default
``benchmarks/results.json``) and writes ``DIR/benchmarks.md`` (default ``docs/``): one Markdown table
of every headwater figure beside the limits measured in the same run and the ratio to each, and
one PNG bar chart per benchmark under ``DIR/benchmarks/``. A failed benchmark is listed with its
error. Nothing is hard-coded: every number on the page comes from the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Comparison:
    """One headwater figure of a benchmark and the limits it is measured against."""

    benchmark: str
    what: str
    headwater: tuple[str, str]
    """(label, result key) of the headwater figure."""
    limits: tuple[tuple[str, str], ...]
    """(label, result key) of each limit measured in the same run."""
    unit: str = "records/s"


COMPARISONS = (
    Comparison(
        "inmemory",
        "map + filter, parallelism 1",
        ("headwater", "headwater_rps"),
        (("per-record Python loop", "plain_python_rps"), ("batched Python", "batched_python_rps")),
    ),
    Comparison(
        "inmemory",
        "the same with 1 s checkpoints",
        ("headwater, checkpoints", "headwater_ckpt_rps"),
        (("per-record Python loop", "plain_python_rps"), ("batched Python", "batched_python_rps")),
    ),
    Comparison(
        "windows",
        "1 s tumbling windows, 10,000 keys",
        ("headwater", "headwater_rps"),
        (("plain-Python dict", "plain_python_rps"),),
    ),
    Comparison(
        "async_io",
        "10 ms lookups, capacity 100 (unordered)",
        ("headwater", "unordered_rps"),
        (("raw asyncio loop", "raw_asyncio_rps"), ("ceiling", "ceiling_rps")),
    ),
    Comparison(
        "async_sink",
        "HTTP endpoint, 8 requests of 500 in flight",
        ("async sink", "rps"),
        (("raw asyncio loop", "raw_rps"), ("ceiling", "ceiling_rps")),
    ),
    Comparison(
        "kafka",
        "Kafka -> map -> Kafka, at least once",
        ("headwater, at least once", "alo_rps"),
        (("raw aiokafka loop", "raw_rps"),),
    ),
    Comparison(
        "kafka",
        "Kafka -> map -> Kafka, exactly once",
        ("headwater, exactly once", "eo_rps"),
        (("raw aiokafka loop", "raw_rps"),),
    ),
    Comparison(
        "aws",
        "Kinesis sink, 8 requests in flight, 20 ms added",
        ("sink", "sink_rps"),
        (("boto3 thread pool", "raw_put_rps"),),
    ),
    Comparison(
        "aws",
        "Kinesis source, 4 shards",
        ("source", "source_rps"),
        (("boto3 loop", "raw_get_rps"),),
    ),
    Comparison(
        "jdbc",
        "upserts into PostgreSQL, batches of 1,000",
        ("headwater", "headwater_rps"),
        (("raw psycopg loop", "raw_rps"),),
    ),
)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def table(report: dict[str, Any]) -> list[str]:
    """The Markdown table: one row per comparison and limit."""
    lines = [
        "| benchmark | what | headwater | limit | limit measured | ratio |",
        "|---|---|---:|---|---:|---:|",
    ]
    for c in COMPARISONS:
        result = report["benchmarks"].get(c.benchmark, {}).get("result")
        if result is None or c.headwater[1] not in result:
            continue
        figure = result[c.headwater[1]]
        for label, key in c.limits:
            limit = result.get(key)
            if not limit:
                continue
            lines.append(
                f"| `{c.benchmark}` | {c.what} | {_number(figure)} {c.unit} | {label} | "
                f"{_number(limit)} {c.unit} | {figure / limit:.2f} |"
            )
    return lines


def chart(report: dict[str, Any], benchmark: str, path: Path) -> bool:
    """A bar chart of ``benchmark``'s figures and limits at ``path``; False if it has none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    result = report["benchmarks"].get(benchmark, {}).get("result")
    if result is None:
        return False
    bars: dict[str, float] = {}
    headwater: set[str] = set()
    for c in COMPARISONS:
        if c.benchmark != benchmark or c.headwater[1] not in result:
            continue
        bars[c.headwater[0]] = result[c.headwater[1]]
        headwater.add(c.headwater[0])
        for label, key in c.limits:
            if result.get(key):
                bars.setdefault(label, result[key])
    if not bars:
        return False
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.45 * len(bars)))
    labels = list(bars)
    colors = ["#1f6feb" if label in headwater else "#8b949e" for label in labels]
    axes.barh(labels, [bars[label] for label in labels], color=colors)
    axes.invert_yaxis()
    axes.set_xlabel("records/s")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:,.0f}"))
    axes.set_title(benchmark)
    for index, label in enumerate(labels):
        axes.text(bars[label], index, f" {_number(bars[label])}", va="center", fontsize=8)
    axes.margins(x=0.2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def page(report: dict[str, Any], charts: list[str]) -> str:
    """The Markdown page."""
    env = report["environment"]
    settings = ", ".join(f"`{k}={v}`" for k, v in sorted(env["settings"].items())) or "defaults"
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/report.py from benchmarks/results.json: do not edit. -->",
        "",
        "Every headwater figure is measured against limits taken in the same run: a raw client",
        "loop with the same concurrency, or a plain-Python loop calling the same code. Every side",
        "checks its result (all records arrived, the output is right), so a fast wrong run fails",
        "instead of scoring. A ratio above 1 means headwater was faster than that limit in the",
        "run. Regenerate with:",
        "",
        "```",
        "python benchmarks/run.py all --json",
        "python benchmarks/report.py",
        "```",
        "",
        f"Run of {env['date']}: Python {env['python']} on {env['cpus']} CPUs ({env['machine']}), "
        f"settings: {settings}. The machine was shared with other work, so figures are noisy.",
        "",
        *table(report),
        "",
    ]
    failed = {n: e for n, e in report["benchmarks"].items() if "error" in e}
    if failed:
        lines += ["## Failed in this run", ""]
        for name, entry in sorted(failed.items()):
            lines += [f"`{name}`:", "", "```", entry["error"], "```", ""]
    lines += ["## Charts", "", "Blue: headwater; grey: the limits measured in the same run.", ""]
    lines += [f"![{name}](benchmarks/{name}.png)" for name in charts]
    lines.append("")
    lines += ["## Every figure", "", "```json", json.dumps(report["benchmarks"], indent=2), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", nargs="?", type=Path, default=HERE / "results.json")
    parser.add_argument("--docs", type=Path, default=HERE.parent / "docs")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    images = args.docs / "benchmarks"
    images.mkdir(parents=True, exist_ok=True)
    charts = [
        name for name in sorted(report["benchmarks"]) if chart(report, name, images / f"{name}.png")
    ]
    (args.docs / "benchmarks.md").write_text(page(report, charts), encoding="utf-8")
    print(f"wrote {args.docs / 'benchmarks.md'} and {len(charts)} charts in {images}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
