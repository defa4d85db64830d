"""Summaries and the printed table of ``bench/pull``: medians, ratios, targets, PASS/FAIL."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from pull_lib.measure import Trial

RATIO_TARGET = 0.7  # portside / docker, wall time, lower is better
RSS_TARGET_MB = 250.0  # portside peak memory


@dataclass
class Results:
    """Trials per (image, tool), in the order they ran."""

    trials: dict[tuple[str, str], list[Trial]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # tool -> reason

    def add(self, image: str, tool: str, trial: Trial) -> None:
        self.trials.setdefault((image, tool), []).append(trial)

    def times(self, image: str, tool: str) -> list[float]:
        return [t.seconds for t in self.trials.get((image, tool), []) if t.ok]

    def failures(self, image: str, tool: str) -> list[Trial]:
        return [t for t in self.trials.get((image, tool), []) if not t.ok]

    def median(self, image: str, tool: str) -> float | None:
        times = self.times(image, tool)
        return statistics.median(times) if times else None

    def peak_mb(self, image: str, tool: str) -> float | None:
        trials = [t for t in self.trials.get((image, tool), []) if t.ok]
        return max(t.peak_rss for t in trials) / 1e6 if trials else None


@dataclass
class Verdict:
    image: str
    docker_ratio: float | None
    skopeo_ratio: float | None
    peak_mb: float | None

    @property
    def passed(self) -> bool:
        return (
            self.docker_ratio is not None
            and self.docker_ratio <= RATIO_TARGET
            and self.peak_mb is not None
            and self.peak_mb < RSS_TARGET_MB
        )


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdicts(results: Results, images: list[str]) -> list[Verdict]:
    out = []
    for image in images:
        ps = results.median(image, "portside")
        out.append(
            Verdict(
                image,
                _ratio(ps, results.median(image, "docker")),
                _ratio(ps, results.median(image, "skopeo")),
                results.peak_mb(image, "portside"),
            )
        )
    return out


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def render(results: Results, images: list[str], tools: list[str], rounds: int) -> str:
    lines = [f"pull + unpack from a loopback registry, {rounds} round(s), cold each time", ""]
    head = f"{'image':<10} {'tool':<9} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MB':>8}  ok"
    lines += [head, "-" * len(head)]
    for image in images:
        for tool in tools:
            if tool in results.skipped:
                lines.append(f"{image:<10} {tool:<9} skipped: {results.skipped[tool]}")
                continue
            times = results.times(image, tool)
            fails = results.failures(image, tool)
            peak = results.peak_mb(image, tool) if tool == "portside" else None
            low = min(times) if times else None
            high = max(times) if times else None
            lines.append(
                f"{image:<10} {tool:<9} {_fmt(results.median(image, tool)):>9} "
                f"{_fmt(low):>7} {_fmt(high):>7} "
                f"{_fmt(peak, '.0f'):>8}  {len(times)}/{len(times) + len(fails)}"
            )
            for trial in fails[:1]:
                last = trial.output_tail.strip().splitlines()[-1:] or ["(no output)"]
                lines.append(f"{'':<10} {'':<9} failed ({trial.returncode}): {last[0][:150]}")
    lines.append("")
    lines.append(
        f"targets: portside/docker <= {RATIO_TARGET}, portside peak memory < {RSS_TARGET_MB:.0f} MB"
    )
    for v in verdicts(results, images):
        lines.append(
            f"{v.image:<10} portside/docker {_fmt(v.docker_ratio)}  "
            f"portside/skopeo {_fmt(v.skopeo_ratio)}  peak {_fmt(v.peak_mb, '.0f')} MB  "
            f"{'PASS' if v.passed else 'FAIL'}"
        )
    return "\n".join(lines)


def to_json(results: Results, images: list[str], tools: list[str]) -> dict[str, object]:
    return {
        "results": {
            f"{image}/{tool}": {
                "seconds": results.times(image, tool),
                "median": results.median(image, tool),
                "peak_mb": results.peak_mb(image, tool),
                "failures": len(results.failures(image, tool)),
            }
            for image in images
            for tool in tools
            if tool not in results.skipped
        },
        "skipped": results.skipped,
        "verdicts": [v.__dict__ | {"passed": v.passed} for v in verdicts(results, images)],
    }
