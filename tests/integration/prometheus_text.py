"""The Prometheus text format read as a scraper reads it, with python3-prometheus-client's own
parser: shared by the tests of `clusterd metrics` and of the HTTP endpoint ([metrics] listen)."""
from prometheus_client.parser import text_string_to_metric_families


def samples_of(text):
    """{metric name: [(labels, value), ...]} of every sample in `text`."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, metric, **labels):
    """The one value of `metric` whose labels include `labels`; fails unless exactly one has them."""
    [found] = [v for l, v in samples[metric] if all(l.get(k) == str(w) for k, w in labels.items())]
    return found
