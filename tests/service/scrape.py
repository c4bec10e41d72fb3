"""A Prometheus text exposition, parsed (with prometheus_client's own parser) for assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

MONOTONIC_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The one sample with exactly these labels (it must exist)."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples that have (at least) these labels; 0 if there are none."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def went_backwards(self, later: Scrape) -> list[str]:
        """Counter and histogram samples that are lower (or gone) in `later`."""
        return [
            f"{name}{dict(labels)}: {value} -> {later.samples.get((name, labels))}"
            for (name, labels), value in self.samples.items()
            if name.endswith(MONOTONIC_SUFFIXES)
            and later.samples.get((name, labels), -1.0) < value
        ]
