"""What every benchmark script reports: progress on stderr, the Isengard / Orthanc table, the JSON figures.

One place for the ratio and the table layout, so that the scripts' tables read alike.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Figures by server name ("isengard", "orthanc"), then by metric key.
Results = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Metric:
    """One row of a table: the figure's key in the results, its label, and which way is good for Isengard."""

    key: str
    label: str
    higher_is_better: bool


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ratios(results: Results) -> dict[str, float]:
    """Isengard / Orthanc for every figure both servers produced."""
    mine, theirs = results.get("isengard", {}), results.get("orthanc", {})
    return {key: mine[key] / theirs[key] for key in mine if theirs.get(key)}


def heading(title: str, versions: dict[str, str], higher: str, lower: str) -> list[str]:
    """The lines above a table: what was measured and on which versions, then how to read a ratio
    (``higher`` names the units where more is better, ``lower`` those where less is)."""
    return [f"{title}; Isengard {versions.get('isengard', '-')}, Orthanc {versions.get('orthanc', '-')}",
            f"ratio = Isengard / Orthanc. For {higher}, ratio > 1 is better for Isengard; "
            f"for {lower}, ratio < 1 is better for Isengard.", ""]


def table(results: Results, metrics: Sequence[Metric], above: Sequence[str]) -> str:
    """The ``above`` lines, then one row per metric: figure, Isengard, Orthanc, ratio, and which way is
    good for Isengard."""
    ratio = ratios(results)

    def cell(server: str, key: str) -> str:
        value = results.get(server, {}).get(key)
        return "-" if value is None else f"{value:.2f}"

    width = max(len(metric.label) for metric in metrics)
    lines = [*above, f"{'figure':<{width}}  {'Isengard':>10}  {'Orthanc':>10}  {'ratio':>7}  better",
             "-" * (width + 44)]
    for metric in metrics:
        shown = f"{ratio[metric.key]:.2f}" if metric.key in ratio else "-"
        lines.append(f"{metric.label:<{width}}  {cell('isengard', metric.key):>10}  "
                     f"{cell('orthanc', metric.key):>10}  {shown:>7}  "
                     f"{'higher' if metric.higher_is_better else 'lower'}")
    return "\n".join(lines)


@dataclass
class Outcome:
    """What a benchmark found: figures and versions by server name, and the warnings that make it fail."""

    results: Results = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def figures(self, server: str) -> dict[str, float]:
        """Where ``server``'s figures go as they are measured: a server that fails keeps those it had."""
        return self.results.setdefault(server, {})

    def finish(self, text: str, path: Path | None, settings: dict[str, Any], metrics: Sequence[Metric] = ()) -> int:
        """Print the table on stdout and the warnings on stderr, write the JSON file at ``path`` if one is asked
        for; returns the exit status, 1 when there are warnings."""
        print(text)
        for warning in self.warnings:
            print(f"WARNING: {warning}", file=sys.stderr)
        if path is not None:
            self.write_json(path, settings, metrics)
        return 1 if self.warnings else 0

    def write_json(self, path: Path, settings: dict[str, Any], metrics: Sequence[Metric]) -> None:
        """The run's settings and figures; with ``metrics``, also the ratios and which way each figure is good."""
        comparison = {"ratios_isengard_over_orthanc": ratios(self.results)} if metrics else {}
        document: dict[str, Any] = {**settings, "versions": self.versions, "results": self.results, **comparison,
                                    "warnings": self.warnings}
        if metrics:
            document["higher_is_better"] = {metric.key: metric.higher_is_better for metric in metrics}
        path.write_text(json.dumps(document, indent=2) + "\n")
