"""deploy/grafana/ibwatch.json and deploy/prometheus/ibwatch-rules.yaml: every metric,
label and label value their PromQL reads is one a running daemon exports (a live
scrape of `ibwatch run` against the simulator, counters read through rate/increase and
gauges not), and the counters they read through increase() exist at 0 before their
first event; the dashboard holds together the way a Grafana import needs and shows one
job; the rules file has the structure Prometheus loads, and its aggregations merge the
replicas of a deployment but never two deployments. (promtool is no PyPI package:
`promtool check rules` and `promtool test rules
deploy/prometheus/ibwatch-rules.test.yaml` are run by hand.)
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.support import IBWATCH, LineReader
from tests.deploy import promql
from tests.deploy.promql import AGGREGATIONS, RANGE_FUNCTIONS_OF_COUNTERS, Query
from tests.support import ACCOUNT, scenario, timeline
from watcher.metrics import (
    DELIVERY_OUTCOMES,
    DISCOVERY_OPERATIONS,
    FIRST_SIGHTING,
    NOT_POLLED,
    OUTCOMES,
    PIPELINE_STATUSES,
    STATUSES,
)
from watcher.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ibwatch.json"
RULES = ROOT / "deploy" / "prometheus" / "ibwatch-rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "ibwatch-rules.test.yaml"

SCHEMA_VERSION = 42
"""Grafana's last classic (v1) dashboard schema version: "Schema version 42 is the final
version for the v1 dashboard API" (grafana/grafana,
apps/dashboard/pkg/migration/schemaversion/README.md). Grafana migrates an older one
on import; the classic model imports into Grafana 10 to 13."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24
CUMULATIVE = ("counter", "histogram", "summary")
"""Families whose samples only grow: read them through rate/irate/increase."""
TARGET_LABELS = frozenset({"instance", "job"})
"""The labels Prometheus itself gives every scraped series, whatever the scrape config
("Jobs and instances", prometheus.io/docs/concepts/jobs_instances/): no /metrics
exports them, and queries may match on them."""
PER_REPLICA = frozenset({"instance", "pod", "node"})
"""The labels a scrape config gives each replica of one deployment: `instance`; `pod`
(the Prometheus Operator's ServiceMonitor and PodMonitor, most pod scrape configs);
`node` (the prometheus-community chart's "kubernetes-service-endpoints" job, which
deploy/kubernetes/service.yaml's annotations are for). The rules aggregate `without`
them: dropping a label a series lacks is harmless, so only `without` lists may name
`pod` and `node`."""
PROMETHEUS_SERIES = {"up": "gauge"}
"""Series Prometheus writes for each target itself (same page): their labels are the
target's."""
KNOWN_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("ibwatch_images_watched", "status"): frozenset({*STATUSES, NOT_POLLED}),
    ("ibwatch_transitions_total", "from_status"): frozenset({FIRST_SIGHTING, *STATUSES}),
    ("ibwatch_transitions_total", "to_status"): frozenset(STATUSES),
    ("ibwatch_api_calls_total", "outcome"): frozenset(OUTCOMES),
    ("ibwatch_deliveries_total", "outcome"): frozenset(DELIVERY_OUTCOMES),
    ("ibwatch_pipelines_followed", "status"): frozenset(PIPELINE_STATUSES),
    ("ibwatch_discovery_calls_total", "operation"): frozenset(DISCOVERY_OPERATIONS),
    ("ibwatch_discovery_calls_total", "outcome"): frozenset(OUTCOMES),
}
"""Label values the code names (whether or not a scrape shows them yet)."""
SET_OPERATORS = frozenset({"and", "or", "unless"})


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(within: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, those inside a collapsed row too."""
    for panel in dashboard()["panels"] if within is None else within:
        yield panel
        yield from panels(panel.get("panels", []))


def variables() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dashboard()["templating"]["list"]
    return found


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every query the dashboard and the rules make."""
    found = [
        (f"panel {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]
    for variable in variables():
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["query"]["query"]))
    found += [(f"alert {rule['alert']}", rule["expr"]) for rule in rules()]
    return found


def queries() -> list[tuple[str, Query]]:
    """Each expression read; raises where one cannot be, and never reads none."""
    found = [(where, promql.read(expression)) for where, expression in expressions()]
    assert all(query.selectors for _, query in found), "an expression reads no metric"
    return found


# --- the PromQL reader ---------------------------------------------------------------


def test_reads_metrics_not_functions_keywords_labels_or_literals() -> None:
    query = promql.read(
        'sum by (account) (rate(ibwatch_api_calls_total{outcome="throttled", '
        'account=~"$account"}[5m])) / sum by (account) (rate(ibwatch_api_calls_total[5m])) '
        ">= bool 0.99 # ratio of sum_total"
    )
    assert [(s.metric, s.labels, s.range_function, s.within) for s in query.selectors] == [
        ("ibwatch_api_calls_total", {"outcome", "account"}, "rate", ("sum", "rate")),
        ("ibwatch_api_calls_total", frozenset(), "rate", ("sum", "rate")),
    ]
    assert [(g.labels, len(g.selectors)) for g in query.groupings] == [
        ({"account"}, 1),
        ({"account"}, 1),
    ]
    assert [(m.label, m.op, m.literals) for m in query.selectors[0].matchers] == [
        ("outcome", "=", ("throttled",)),
        ("account", "=~", ()),  # a Grafana variable: not known here
    ]


def test_matchers_give_the_values_they_name_unquoted() -> None:
    query = promql.read('a{s!~"AVAILABLE|FAILED", t=~"x.*|y", u!="o\\"k\\\\", v=`raw\\.`, w=\'q\'}')
    assert [(m.label, m.op, m.value, m.literals) for m in query.selectors[0].matchers] == [
        ("s", "!~", "AVAILABLE|FAILED", ("AVAILABLE", "FAILED")),
        ("t", "=~", "x.*|y", ()),  # a regex that does more than list values
        ("u", "!=", 'o"k\\', ('o"k\\',)),
        ("v", "=", "raw\\.", ("raw\\.",)),
        ("w", "=", "q", ("q",)),
    ]


def test_a_metric_named_in_a_string_a_number_or_a_variable_is_not_read() -> None:
    query = promql.read(
        'label_replace(histogram_quantile(0.95, sum by (le) (rate(x_bucket{path="rate(y[5m])"}'
        '[$__rate_interval]))), "dst", \'z_total\', "src", `(.*)`) > 1e3 + 0x1f + ${limit}'
    )
    assert query.metrics == {"x_bucket"}
    assert query.selectors[0].labels == {"path"}
    assert query.selectors[0].range_function == "rate"


def test_by_before_or_after_an_aggregation_groups_its_argument_only() -> None:
    before = promql.read("sum by (sink) (a_total) + count(b)")
    after = promql.read("sum(a_total) by (sink) + count(b)")
    for query in (before, after):
        [grouping] = query.groupings
        assert grouping.labels == {"sink"}
        assert [s.metric for s in grouping.selectors] == ["a_total"]
    without = promql.read("max without (instance, pod) (a) > min without (pod) (b)")
    assert [(g.keyword, g.labels) for g in without.groupings] == [
        ("without", {"instance", "pod"}),
        ("without", {"pod"}),
    ]


def test_a_gauge_over_a_range_is_read_through_its_over_time_function() -> None:
    """`last_over_time(g[5m])` in an aggregation (IbwatchDiscoverySourceFailing): the
    range is the function's, and the aggregation's `without` list groups the gauge."""
    query = promql.read(
        'max without (instance, pod) (last_over_time(gauge{region="eu-west-1"}[5m])) > 0'
    )
    [selector] = query.selectors
    assert (selector.metric, selector.labels, selector.range_function, selector.within) == (
        "gauge",
        {"region"},
        "last_over_time",
        ("max", "last_over_time"),
    )
    [grouping] = query.groupings
    assert (grouping.keyword, grouping.labels) == ("without", {"instance", "pod"})
    assert grouping.selectors == (selector,)


def test_offset_and_vector_matching_keywords_are_not_metrics() -> None:
    query = promql.read(
        "max by (sink) (dead) > max without (instance) (dead offset 15m) "
        "and on (sink) group_left (account) other unless ignoring(region) third"
    )
    assert [s.metric for s in query.selectors] == ["dead", "dead", "other", "third"]
    assert [(g.keyword, g.labels, g.operator) for g in query.groupings] == [
        ("by", {"sink"}, ""),
        ("without", {"instance"}, ""),
        ("on", {"sink"}, "and"),
        ("group_left", {"account"}, "and"),
        ("ignoring", {"region"}, "unless"),
    ]


def test_label_values_names_a_label_of_its_metric() -> None:
    query = promql.read('label_values(rate_gauge{account=~"$account"}, region)')
    assert query.metrics == {"rate_gauge"}
    [grouping] = query.groupings
    assert grouping.labels == {"region"}
    assert [s.metric for s in grouping.selectors] == ["rate_gauge"]


@pytest.mark.parametrize(
    "expression",
    [
        "sum(rate(a_total[5m])",
        "rate(a_total[5m]))",
        'a{b="c"',
        'a{b="c}',
        "a{b=c}",
        '{__name__="a"}',
        "a_total[5m]",
        "rate(a_total[])",
        "sum by (x",
        "a by (x)",
        'a{b="\\."}',
    ],
)
def test_what_it_cannot_place_raises(expression: str) -> None:
    with pytest.raises(promql.Unreadable):
        promql.read(expression)


# --- what a scrape exports, and what a query may read of it ---------------------------


@dataclass
class Scrape:
    """One /metrics answer, by sample name (`x_total`, `x_bucket`)."""

    kinds: dict[str, str] = field(default_factory=dict)
    """Its family's type: counter, gauge, histogram, ..."""
    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(sample name, label): the values seen."""
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    """Each sample name's series (sorted label pairs) and value."""

    @classmethod
    def of(cls, text: str) -> Scrape:
        scrape = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scrape.kinds[sample.name] = family.type
                scrape.labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    scrape.values.setdefault((sample.name, label), set()).add(value)
                key = tuple(sorted(sample.labels.items()))
                scrape.series.setdefault(sample.name, {})[key] = sample.value
        for name, kind in PROMETHEUS_SERIES.items():
            scrape.kinds[name] = kind
            scrape.labels[name] = set(TARGET_LABELS)
        return scrape

    def total(self, name: str) -> float:
        return sum(self.series.get(name, {}).values())


def problems(where: str, query: Query, scrape: Scrape) -> list[str]:
    """What `query` reads that `scrape` does not export: a metric; a label (but the
    target labels); a value a label never takes (neither seen nor named by the code);
    a counter read without rate/increase, or a gauge read through one."""
    found = []
    for selector in query.selectors:
        metric = selector.metric
        if metric not in scrape.kinds:
            found.append(f"{where}: {metric} is not exported")
            continue
        for label in sorted(selector.labels - scrape.labels[metric] - TARGET_LABELS):
            found.append(f"{where}: {metric} has no label {label}")
        for matcher in selector.matchers:
            if matcher.label in TARGET_LABELS:
                if matcher.literals:
                    found.append(f"{where}: names a {matcher.label}: ties it to one scrape config")
                continue
            if matcher.label not in scrape.labels[metric]:
                continue  # said above
            seen = scrape.values.get((metric, matcher.label), set())
            known = seen | KNOWN_VALUES.get((metric, matcher.label), frozenset())
            for value in matcher.literals:
                if value not in known:
                    found.append(f"{where}: {metric}'s {matcher.label} is never {value!r}")
        cumulative = scrape.kinds[metric] in CUMULATIVE
        values_read = "label_values" not in selector.within  # it reads labels only
        reads_rate = selector.range_function in RANGE_FUNCTIONS_OF_COUNTERS
        if values_read and cumulative != reads_rate:
            found.append(
                f"{where}: the {scrape.kinds[metric]} {metric} is read "
                f"through {selector.range_function}"
            )
    for grouping in query.groupings:
        accepted = TARGET_LABELS | (PER_REPLICA if grouping.keyword == "without" else set())
        for selector in grouping.selectors:
            exported = scrape.labels.get(selector.metric, set())
            for label in sorted(grouping.labels - exported - accepted):
                found.append(f"{where}: {grouping.keyword} {label}, which {selector.metric} lacks")
    return found


def alert_labels(query: Query) -> tuple[frozenset[str] | None, frozenset[str]]:
    """The labels an alert of `query` carries, as (only these, or None: every label of
    its leftmost selector's series; less these). `absent()` gives its equality
    matchers' labels only; `by` keeps its list, `without` drops it; `on`/`ignoring` of
    an arithmetic or comparison keep (drop) theirs, while a set operator (`and`) or a
    group_x match keeps the left side's labels whole."""
    first = query.selectors[0]
    if first.within[:1] in (("absent",), ("absent_over_time",)):
        return frozenset(m.label for m in first.matchers if m.op == "="), frozenset()
    only: frozenset[str] | None = None
    dropped: set[str] = set()
    one_to_one = not any(g.keyword in ("group_left", "group_right") for g in query.groupings)
    for grouping in query.groupings:
        if not any(selector is first for selector in grouping.selectors):
            continue
        narrows = grouping.keyword in ("on", "ignoring") and one_to_one
        narrows = narrows and grouping.operator not in SET_OPERATORS
        if grouping.keyword == "by" or (narrows and grouping.keyword == "on"):
            only = grouping.labels if only is None else only & grouping.labels
        elif grouping.keyword == "without" or (narrows and grouping.keyword == "ignoring"):
            dropped |= grouping.labels
    return only, frozenset(dropped)


def test_an_unknown_metric_label_or_value_is_a_problem() -> None:
    scrape = Scrape.of(
        "# TYPE ibwatch_deliveries_total counter\n"
        'ibwatch_deliveries_total{sink="log",outcome="delivered"} 1\n'
        "# TYPE ibwatch_ready gauge\nibwatch_ready 1\n"
    )
    for expression in (
        'sum by (sink) (rate(ibwatch_deliveries_total{job=~"$job", outcome="gone"}[5m]))',
        'ibwatch_ready{job=~"$job"} and on (job, instance) up == 0',
        "max without (instance, pod, node) (ibwatch_ready)",
        "max without (instance, pod, node) (last_over_time(ibwatch_ready[5m])) > 0",
    ):
        assert problems("ok", promql.read(expression), scrape) == [], expression
    for expression, problem in (
        ('rate(ibwatch_deliveries_total{outcome="throtled"}[5m])', "outcome is never 'throtled'"),
        ('rate(ibwatch_deliveries_total{sink=~"log|hoook"}[5m])', "sink is never 'hoook'"),
        ('rate(ibwatch_deliveries_total{snk="log"}[5m])', "has no label snk"),
        ('ibwatch_ready{job="ibwatch"}', "names a job"),
        ("sum by (sink) (ibwatch_ready)", "by sink, which ibwatch_ready lacks"),
        ("max without (pdo) (ibwatch_ready)", "without pdo"),
        ("ibwatch_deliveries_total", "the counter ibwatch_deliveries_total is read through None"),
        ("rate(ibwatch_ready[5m])", "the gauge ibwatch_ready is read through rate"),
        (
            "last_over_time(ibwatch_deliveries_total[5m])",
            "the counter ibwatch_deliveries_total is read through last_over_time",
        ),
        ("ibwatch_readyy", "ibwatch_readyy is not exported"),
    ):
        [found] = problems("bad", promql.read(expression), scrape)
        assert problem in found, expression


def test_an_alert_carries_the_labels_its_expression_keeps() -> None:
    def kept(expression: str) -> tuple[frozenset[str] | None, frozenset[str]]:
        return alert_labels(promql.read(expression))

    assert kept("absent(ibwatch_ready)") == (frozenset(), frozenset())
    assert kept('absent(ibwatch_ready{job="a", instance=~"b.*"})') == ({"job"}, frozenset())
    assert kept("ibwatch_ready == 0") == (None, frozenset())
    assert kept("up == 0 and on (job, instance) ibwatch_ready") == (None, frozenset())
    assert kept("a > on (sink) b") == ({"sink"}, frozenset())
    assert kept("sum by (sink, job) (max without (pod) (a)) > 1") == ({"sink", "job"}, {"pod"})
    assert kept("max without (instance, pod) (a) > min without (instance) (b)") == (
        None,
        {"instance", "pod"},
    )


# --- against a running daemon --------------------------------------------------------

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/monitored/1.0.0/1"
NOTHING_YET = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/unbuilt/1.0.0"
"""A version ARN with no build in the scenario: the daemon watches, and nothing changes."""


def config_text(endpoint_url: str, *arns: str) -> str:
    """No [events] queue: push's series are registered whether push is on or not."""
    listed = ", ".join(f'"{arn}"' for arn in arns)
    return (
        f'[aws]\nregion = "us-east-1"\nendpoint_url = "{endpoint_url}"\n'
        f'[watch]\narns = [{listed}]\n[watch.intervals]\ndefault = "0.1s"\n'
        '[state]\npath = "state.db"\n[server]\nlisten = "127.0.0.1:0"\n[[sinks]]\ntype = "log"\n'
    )


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def scrape_once_delivered(port: int) -> Scrape:
    """/metrics once /readyz answers 200, a discovery pass has ended and the daemon
    has seen a transition and delivered it."""
    text = ""
    with anyio.move_on_after(30):
        while True:
            ready, _ = await get(port, "/readyz")
            _, text = await get(port, "/metrics")
            scrape = Scrape.of(text)
            counted = ("ibwatch_transitions_total", "ibwatch_deliveries_total")
            discovered = "ibwatch_pipelines_followed" in scrape.series  # a pass has ended
            if ready == 200 and discovered and all(scrape.total(n) > 0 for n in counted):
                return scrape
            await anyio.sleep(0.05)  # polling a condition: the daemon pushes nothing
    raise AssertionError(f"not ready, or nothing delivered; the last scrape:\n{text}")


def zeros(scrape: Scrape, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """`name`'s series by the values of `labels`."""
    return {
        tuple(dict(key)[label] for label in labels): value
        for key, value in scrape.series.get(name, {}).items()
    }


@pytest.mark.timeout(60)
async def test_every_metric_label_and_value_the_dashboard_and_rules_read_is_exported(
    tmp_path: Path,
) -> None:
    """The daemon starts with nothing to see (a version ARN with no build), is scraped,
    then told by SIGHUP to watch a build in BUILDING too: the counters the dashboard
    reads through increase() were there at 0 before their first event, so that event
    counts. The version ARN stays, so discovery still follows a source: the failing
    gauge has a series only for the (account, region) of a source followed now."""
    plan = scenario([{"arn": ARN, "timeline": timeline(("BUILDING", 60), ("AVAILABLE", None))}])
    config = tmp_path / "watcher.toml"
    command = [str(IBWATCH), "run", "--config", str(config), "--log-format", "json"]
    async with Simulator(plan) as url:
        config.write_text(config_text(url, NOTHING_YET))
        async with (
            await anyio.open_process(command, cwd=tmp_path) as process,
            anyio.create_task_group() as group,
        ):
            reader = LineReader(process)
            group.start_soon(reader.pump)
            try:
                await reader.until(lambda lines: any('"ibwatch.started"' in x for x in lines))
                [started] = [
                    line for line in reader.json_lines() if line.get("event") == "ibwatch.started"
                ]
                port = int(started["listen"].rpartition(":")[2])
                before = Scrape.of((await get(port, "/metrics"))[1])
                config.write_text(config_text(url, NOTHING_YET, ARN))
                process.send_signal(signal.SIGHUP)
                after = await scrape_once_delivered(port)
            finally:
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    await process.wait()
    pairs = [(a, b) for a in (FIRST_SIGHTING, *STATUSES) for b in STATUSES if a != b]
    assert zeros(before, "ibwatch_transitions_total", "from_status", "to_status") == {
        pair: 0 for pair in pairs
    }
    assert zeros(before, "ibwatch_deliveries_total", "sink", "outcome") == {
        ("log", outcome): 0 for outcome in DELIVERY_OUTCOMES
    }
    assert zeros(before, "ibwatch_api_calls_total", "outcome", "account", "region") == {
        (outcome, "default", "us-east-1"): 0 for outcome in OUTCOMES
    }
    # Discovery's calls of the version ARN, made at 0 for every outcome (its first pass
    # may have listed it once already).
    listed = zeros(before, "ibwatch_discovery_calls_total", "operation", "outcome", "region")
    assert set(listed) == {("ListImageBuildVersions", o, "us-east-1") for o in OUTCOMES}
    assert sum(listed.values()) == listed["ListImageBuildVersions", "ok", "us-east-1"]
    # What discovery follows now (the version ARN), and what fails: nothing, said as
    # 0s, not left out.
    assert zeros(after, "ibwatch_pipelines_followed", "status") == {
        ("ENABLED",): 0,
        ("DISABLED",): 0,
    }
    assert zeros(after, "ibwatch_discovery_sources_failing", "account", "region") == {
        ("default", "us-east-1"): 0
    }
    # The start-up line counts what `ibwatch check-config` counts.
    assert {k: started[k] for k in ("build_arns", "version_arns", "pipelines", "sinks")} == {
        "build_arns": 0,
        "version_arns": 1,
        "pipelines": 0,
        "sinks": 1,
    }
    assert after.total("ibwatch_ready") == 1, "ibwatch_ready says what /readyz answers: ready"
    found = [problem for where, query in queries() for problem in problems(where, query, after)]
    for rule in rules():
        query = promql.read(rule["expr"])
        only, _ = alert_labels(query)
        if only is None:  # every label its series has: does it have those named?
            has = after.labels[query.selectors[0].metric] | TARGET_LABELS
            for text in rule["annotations"].values():
                for label in sorted(set(re.findall(r"\$labels\.(\w+)", text)) - has):
                    found.append(f"alert {rule['alert']}: its series have no {label}")
    assert not found, "\n".join(found)


# --- the dashboard -------------------------------------------------------------------


def test_the_dashboard_is_grafanas_classic_model_at_a_pinned_schema_version() -> None:
    board = dashboard()
    assert board["schemaVersion"] == SCHEMA_VERSION
    assert board["id"] is None, "an import must not overwrite a dashboard by its database id"
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"])
    assert board["title"]
    assert "__inputs" not in board, "the data source is a variable, chosen after import"


def test_panel_ids_are_unique_and_panels_fit_24_columns_without_overlapping() -> None:
    every = list(panels())
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) for i in ids)
    boxes = []
    for panel in every:
        box = panel["gridPos"]
        x, y, w, h = box["x"], box["y"], box["w"], box["h"]
        assert min(x, y) >= 0, panel["title"]
        assert min(w, h) >= 1, panel["title"]
        assert x + w <= GRID_COLUMNS, f"{panel['title']!r} is wider than the grid"
        boxes.append((panel["title"], x, y, w, h))
    for i, (title, x, y, w, h) in enumerate(boxes):
        for other, ox, oy, ow, oh in boxes[i + 1 :]:
            overlap = x < ox + ow and ox < x + w and y < oy + oh and oy < y + h
            assert not overlap, f"{title!r} overlaps {other!r}"


def test_every_panel_target_and_query_variable_reads_the_datasource_variable() -> None:
    [source] = [v for v in variables() if v["type"] == "datasource"]
    assert (source["name"], source["query"]) == ("datasource", "prometheus")
    for panel in panels():
        if panel["type"] == "row":
            assert not panel.get("targets"), f"row {panel['title']!r} has queries"
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in variables():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
            assert variable["definition"] == variable["query"]["query"], variable["name"]


def test_every_variable_referenced_is_defined_and_every_one_defined_is_used() -> None:
    defined = {variable["name"] for variable in variables()}
    text = json.dumps(dashboard()["panels"]) + json.dumps(
        [v.get("query") for v in variables() if v["type"] == "query"]
    )
    referenced = {
        next(name for name in found if name)
        for found in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]", text)
    }
    referenced = {name for name in referenced if not name.startswith("__")}  # Grafana's own
    assert referenced <= defined, f"undefined: {referenced - defined}"
    assert defined <= referenced, f"never used: {defined - referenced}"


def test_every_panel_says_its_unit_and_what_it_shows() -> None:
    for panel in panels():
        if panel["type"] != "row":
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["description"], panel["title"]


def test_every_dashboard_query_shows_the_chosen_job_only() -> None:
    """Two deployments in one Prometheus never mix: each selector but the job
    variable's own matches `job=~"$job"`."""
    [job] = [v for v in variables() if v["name"] == "job"]
    assert job["query"]["query"] == "label_values(ibwatch_ready, job)"
    assert not job["multi"]
    assert not job["includeAll"]
    for where, query in queries():
        if where.startswith("alert") or where == "variable job":
            continue
        for selector in query.selectors:
            matchers = {(m.label, m.op, m.value) for m in selector.matchers}
            assert ("job", "=~", "$job") in matchers, f"{where}: {selector.metric}"


def test_stat_panels_show_the_present_not_the_last_value_of_the_range() -> None:
    """A range query's last non-null value outlives its series: a replica replaced
    hours ago would still show "ready"."""
    stats = [panel for panel in panels() if panel["type"] == "stat"]
    assert stats
    for panel in stats:
        for target in panel["targets"]:
            assert (target.get("instant"), target.get("range")) == (True, False), panel["title"]


def test_a_ratio_panel_shows_0_not_nan_when_nothing_was_called() -> None:
    """0/0 is NaN: the divisor is kept only above 0, and `or vector(0)` fills the gap."""
    ratios = [
        target["expr"]
        for panel in panels()
        for target in panel.get("targets", [])
        if " / " in target["expr"]
    ]
    assert ratios
    for expression in ratios:
        assert re.fullmatch(r"\(sum\(.+\) / \(sum\(.+\) > 0\)\) or vector\(0\)", expression)


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    read = {
        metric
        for where, query in queries()
        if where.startswith("panel")
        for metric in query.metrics
    }
    assert read >= {
        "ibwatch_images_watched",
        "ibwatch_transitions_total",
        "ibwatch_api_calls_total",
        "ibwatch_rate_limit_requests_per_second",
        "ibwatch_outbox_pending",
        "ibwatch_outbox_oldest_pending_seconds",
        "ibwatch_dead_letters",
        "ibwatch_outbox_readable",
        "ibwatch_push_healthy",
        "ibwatch_push_lag_seconds_bucket",
        "ibwatch_pipelines_followed",
        "ibwatch_pipelines_disabled_total",
        "ibwatch_discovery_sources_failing",
        "ibwatch_discovery_calls_total",
    }


def test_the_disabled_pipelines_panel_shows_how_many_are_disabled_now() -> None:
    """Not the counter, which counts every disabled pipeline again at each start and
    each new leader term: the gauge of the pipelines followed, status DISABLED."""
    [panel] = [p for p in panels() if p["title"] == "Pipelines disabled"]
    [query] = [promql.read(target["expr"]) for target in panel["targets"]]
    [selector] = query.selectors
    assert selector.metric == "ibwatch_pipelines_followed"
    assert ("status", "=", ("DISABLED",)) in [
        (m.label, m.op, m.literals) for m in selector.matchers
    ]


# --- the alerting rules --------------------------------------------------------------

# Prometheus's duration format (model.ParseDuration): units from years down to ms, in order.
PROMETHEUS_DURATION = re.compile(r"0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")


def test_the_rules_file_has_the_structure_prometheus_loads() -> None:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "query_offset", "labels"}
        assert group["rules"], group["name"]
    alerts = [rule["alert"] for rule in rules()]
    assert len(alerts) == len(set(alerts))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"Ibwatch[A-Z][A-Za-z]+", rule["alert"])
        for key in ("for", "keep_firing_for"):
            if key in rule:
                assert rule[key], rule["alert"]
                assert PROMETHEUS_DURATION.fullmatch(rule[key]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description", "runbook"}


def test_each_rule_expression_reads_and_its_annotations_name_labels_it_keeps() -> None:
    """Brackets balance and every selector is named (`promql.read`); `$labels.x` in an
    annotation is a label its alerts carry (`alert_labels`; the live test checks that
    the series have it where the expression keeps every label)."""
    for rule in rules():
        query = promql.read(rule["expr"])
        assert query.selectors, rule["alert"]
        only, dropped = alert_labels(query)
        for text in rule["annotations"].values():
            assert text.count("{{") == text.count("}}"), rule["alert"]
            named = set(re.findall(r"\$labels\.(\w+)", text))
            lost = {x for x in named if x in dropped or (only is not None and x not in only)}
            assert not lost, f"{rule['alert']} names {lost}, which it drops"


def test_rule_aggregations_merge_the_replicas_and_keep_deployments_apart() -> None:
    """Each aggregation drops exactly the labels that differ between replicas
    (`without`, never `by`, which would merge two jobs or namespaces), and no rule
    names a job or instance."""
    for rule in rules():
        query = promql.read(rule["expr"])
        for grouping in query.groupings:
            if grouping.keyword in ("by", "without"):
                assert grouping.keyword == "without", rule["alert"]
                assert grouping.labels >= PER_REPLICA, rule["alert"]
        for selector in query.selectors:
            aggregations = sum(f in AGGREGATIONS for f in selector.within)
            grouped = sum(
                g.keyword == "without" and any(s is selector for s in g.selectors)
                for g in query.groupings
            )
            assert aggregations == grouped, f"{rule['alert']}: an aggregation over everything"
            assert not {m.label for m in selector.matchers} & TARGET_LABELS, rule["alert"]


def test_the_rules_cover_the_issue_and_their_promtool_tests_cover_every_rule() -> None:
    alerts = {rule["alert"] for rule in rules()}
    assert alerts >= {
        "IbwatchNotReady",
        "IbwatchReplicaDown",
        "IbwatchOutboxStale",
        "IbwatchOutboxUnreadable",
        "IbwatchDeadLettersGrowing",
        "IbwatchAllCallsThrottled",
        "IbwatchDiscoverySourceFailing",
    }
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == alerts, "each alert has a promtool test in which it fires"
