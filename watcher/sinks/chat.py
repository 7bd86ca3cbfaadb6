"""What a chat message about a transition says, whatever the platform.

Slack, Teams, Discord and Google Chat each lay out the same `ChatMessage`, so the
four say the same thing: a title, an outcome (for colour), short labelled facts, the
reason and failure details on a failure, AMIs and container URIs on AVAILABLE, and
the ARN; on FAILED with diagnostics also the failing step, its message, links to the
logs and the console and the log tail (`failure_details`). Never a raw JSON dump of
the event. Also the shared tools for staying inside platform limits: clipping with
"…" and trying ever smaller `Budget`s until a payload fits; and `ChatSink`, the one
POST per event the four sinks share. Apart from that POST, pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from watcher.model import ImageStatus, Transition
from watcher.sinks.failure_details import FailureDetails
from watcher.sinks.http import HttpPoster, RetryAfterFromBody, json_body
from watcher.summary import duration_text, label
from watcher.templates import validate_template
from watcher.urls import redact_url

Outcome = Literal["success", "failure", "progress", "warning"]

ELLIPSIS = "…"

EMOJI: Mapping[Outcome, str] = {
    "success": "✅",
    "failure": "❌",
    "warning": "⚠️",
    "progress": "⏳",
}

COLOURS: Mapping[Outcome, int] = {
    "success": 0x2EB67D,
    "failure": 0xE01E5A,
    "warning": 0xECB22E,
    "progress": 0x1D9BD1,
}
"""One colour per outcome (green, red, amber, blue), shared by every platform."""

_LIFECYCLE = frozenset({ImageStatus.DEPRECATED, ImageStatus.DISABLED, ImageStatus.DELETED})


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class Budget:
    """Caps that shrink a message; platforms try `BUDGETS` in turn until it fits."""

    reason: int
    """Characters of the status reason."""
    detail: int
    """Characters of each failure detail (error messages can be long)."""
    items: int
    """AMIs, container URIs and failure details listed; the rest are counted."""
    text: int
    """Characters of a template's output."""
    message: int = 0
    """Rendered characters (bytes where a platform counts bytes) of the failed
    step's own message."""
    log: int = 0
    """Likewise, of the build log's tail; a FAILED event's log shrinks first, since
    a short reason is not cut by the smaller budgets."""


BUDGETS: tuple[Budget, ...] = (
    Budget(reason=3000, detail=1000, items=100, text=3000, message=1500, log=2800),
    Budget(reason=1500, detail=500, items=40, text=1500, message=1000, log=1800),
    Budget(reason=600, detail=300, items=20, text=800, message=600, log=1000),
    Budget(reason=300, detail=150, items=10, text=400, message=300, log=500),
    Budget(reason=120, detail=80, items=5, text=200, message=150, log=200),
)

_FACT_VALUE = 300
_TITLE = 250


@dataclass(frozen=True)
class ChatMessage:
    """The platform-neutral content of one chat message about one transition."""

    label: str
    """"web-base 1.4.0/7"."""
    title: str
    """"web-base 1.4.0/7 is AVAILABLE in 3 regions", "web-base 1.4.0/7: BUILDING → TESTING"."""
    outcome: Outcome
    status: str
    status_line: str
    """"BUILDING → AVAILABLE (passed TESTING, DISTRIBUTING)" or "PENDING (first seen)"."""
    facts: tuple[Fact, ...]
    """Times, pipeline, type, region, account: short values."""
    arn: str
    event_id: str
    observed_at: datetime
    reason: str | None = None
    failure: tuple[Fact, ...] = ()
    """Failed step, component, step, error message, distribution errors."""
    amis: tuple[Fact, ...] = ()
    """Region → AMI id."""
    containers: tuple[Fact, ...] = ()
    """Region → image URI, one per URI."""
    note: str | None = None
    details: FailureDetails | None = None
    """On FAILED with diagnostics only: the failing step and its message, links to
    the logs and the console, the log tail (each platform cuts them to fit)."""
    omitted_failure: int = 0
    omitted_amis: int = 0
    omitted_containers: int = 0

    @classmethod
    def from_event(cls, event: Transition) -> ChatMessage:
        status = event.current.status
        previous = event.previous.status if event.previous else None
        if previous is None:
            status_line = f"{status} (first seen)"
        else:
            status_line = f"{previous} → {status}"
            if event.skipped:
                status_line += f" (passed {', '.join(s.value for s in event.skipped)})"
        outputs = event.outputs
        details = FailureDetails.from_event(event)
        failure = tuple(_failure(event.current.failure_context or {}))
        if details is not None and details.step is not None:
            # The workflow step says more than failureContext's bare step name.
            failure = tuple(f for f in failure if f.label != "Failed step")
        return cls(
            label=label(event),
            title=_title(event),
            outcome=outcome(status),
            status=status.value,
            status_line=status_line,
            facts=tuple(_facts(event)),
            arn=event.image.arn,
            event_id=event.id,
            observed_at=event.observed_at,
            reason=event.current.reason or None,
            failure=failure,
            amis=tuple(
                Fact(
                    a.region,
                    a.image
                    if not a.account_id or a.account_id == event.image.account
                    else f"{a.image} (account {a.account_id})",
                )
                for a in (outputs.amis if outputs else ())
            ),
            containers=tuple(
                Fact(c.region, uri)
                for c in (outputs.containers if outputs else ())
                for uri in c.image_uris
            ),
            note=_note(status, previous),
            details=details,
        )

    @property
    def headline(self) -> str:
        """The title behind the outcome's emoji: "✅ web-base 1.4.0/7 is AVAILABLE"."""
        return f"{EMOJI[self.outcome]} {self.title}"

    def limited(self, budget: Budget) -> ChatMessage:
        """A copy whose long parts are clipped, and whose lists are cut, to `budget`."""
        failure, omitted_failure = _cut(self.failure, budget.items)
        amis, omitted_amis = _cut(self.amis, budget.items)
        containers, omitted_containers = _cut(self.containers, budget.items)
        return replace(
            self,
            title=clip(self.title, _TITLE),
            facts=tuple(Fact(f.label, clip(f.value, _FACT_VALUE)) for f in self.facts),
            reason=clip(self.reason, budget.reason) if self.reason else None,
            failure=tuple(Fact(f.label, clip(f.value, budget.detail)) for f in failure),
            amis=amis,
            containers=containers,
            omitted_failure=self.omitted_failure + omitted_failure,
            omitted_amis=self.omitted_amis + omitted_amis,
            omitted_containers=self.omitted_containers + omitted_containers,
        )

    @property
    def text(self) -> str:
        """The message as plain text: notifications and clients that show no cards."""
        lines = [self.headline, self.status_line]
        if self.facts:
            lines.append(" · ".join(f"{f.label}: {f.value}" for f in self.facts))
        if self.note:
            lines.append(self.note)
        if self.reason:
            lines.append(f"Reason: {self.reason}")
        lines.extend(f"{f.label}: {f.value}" for f in self.failure)
        if self.details is not None and self.details.step is not None:
            lines.append(f"Failed step: {self.details.step}")
        if self.details is not None and self.details.step_message:
            # A notification has room for the message's first line, which says why.
            first, *rest = self.details.step_message
            lines.append(f"Step message: {first}{f' {ELLIPSIS}' if rest else ''}")
        if self.omitted_failure:
            lines.append(more(self.omitted_failure, "detail"))
        if self.amis:
            amis = ", ".join(f"{f.label} {f.value}" for f in self.amis)
            lines.append(f"AMIs: {amis}{_and_more(self.omitted_amis)}")
        if self.containers:
            uris = ", ".join(f.value for f in self.containers)
            lines.append(f"Container images: {uris}{_and_more(self.omitted_containers)}")
        lines.append(f"ARN: {self.arn}")
        return "\n".join(lines)


class ChatSink:
    """What the chat sinks share: a webhook URL (never shown: it carries the
    secret), a template validated when the sink is built, and one POST per event.
    Subclasses say what to post (`payload`) and may adjust the URL."""

    retry_after_from_body: RetryAfterFromBody | None = None

    def __init__(
        self,
        *,
        url: str,
        poster: HttpPoster,
        template: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._url = self.target(url)
        self._poster = poster
        self._template = validate_template(template) if template is not None else None
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self._url)})"

    def target(self, url: str) -> str:
        """The URL to post to, given the configured one."""
        return url

    def payload(self, event: Transition) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, event: Transition) -> None:
        await self._poster.post(
            self._url,
            json_body(self.payload(event)),
            timeout_s=self._timeout_s,
            retry_after_from_body=self.retry_after_from_body,
        )


def outcome(status: ImageStatus) -> Outcome:
    if status is ImageStatus.AVAILABLE:
        return "success"
    if status is ImageStatus.FAILED:
        return "failure"
    if status is ImageStatus.CANCELLED or status in _LIFECYCLE:
        return "warning"
    return "progress"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when cut."""
    if len(text) <= limit:
        return text
    if limit < len(ELLIPSIS):
        return ""
    return text[: limit - len(ELLIPSIS)] + ELLIPSIS


def clip_escaped(text: str, limit: int, escape: Callable[[str], str]) -> str:
    """`escape(text)` within `limit` characters, cutting the raw text (never an
    escape sequence in half)."""
    keep = limit
    while True:
        escaped = escape(clip(text, keep))
        if len(escaped) <= limit or keep <= 0:
            return escaped if len(escaped) <= limit else ""
        keep -= len(escaped) - limit


def join_within(lines: Sequence[str], limit: int, *, omitted: int = 0, noun: str = "more") -> str:
    """As many whole `lines` as fit in `limit` characters (newline-joined), then an
    "… and N more" line counting what was left out (plus `omitted` cut earlier)."""
    total = len(lines) + omitted
    for keep in range(len(lines), -1, -1):
        rest = total - keep
        joined = "\n".join([*lines[:keep], *([more(rest, noun)] if rest else [])])
        if len(joined) <= limit:
            return joined
    return clip(more(total, noun), limit)


def more(count: int, noun: str = "more") -> str:
    if noun == "more":
        return f"{ELLIPSIS} and {count} more"
    return f"{ELLIPSIS} and {count} more {noun}{'s' if count != 1 else ''}"


T = TypeVar("T")


def fit(build: Callable[[Budget], T], fits: Callable[[T], bool]) -> T:
    """The first payload `build` makes, from the largest budget down, that `fits`;
    the smallest one if none does (each platform's hard caps keep that one valid)."""
    payload = build(BUDGETS[0])
    for budget in BUDGETS[1:]:
        if fits(payload):
            return payload
        payload = build(budget)
    return payload


def _cut(items: tuple[Fact, ...], limit: int) -> tuple[tuple[Fact, ...], int]:
    return items[:limit], max(0, len(items) - limit)


def _and_more(count: int) -> str:
    return f" {ELLIPSIS} and {count} more" if count else ""


def _title(event: Transition) -> str:
    name = label(event)
    status = event.current.status
    if status is ImageStatus.AVAILABLE:
        outputs = event.outputs
        regions = (
            len({a.region for a in outputs.amis} | {c.region for c in outputs.containers})
            if outputs
            else 0
        )
        where = f" in {regions} region{'s' if regions != 1 else ''}" if regions else ""
        return f"{name} is AVAILABLE{where}"
    if status is ImageStatus.FAILED:
        failed_in = (event.current.failure_context or {}).get("imageStatus")
        return (
            f"{name} FAILED in {failed_in}"
            if isinstance(failed_in, str) and failed_in
            else (f"{name} FAILED")
        )
    if status is ImageStatus.CANCELLED:
        return f"{name} was CANCELLED"
    if event.previous is None or status in _LIFECYCLE:
        return f"{name} is {status}"
    return f"{name}: {event.previous.status} → {status}"


def _facts(event: Transition) -> Iterable[Fact]:
    image = event.image
    if event.previous is not None:
        yield Fact(
            f"Time in {event.previous.status}",
            _duration(event.durations.in_previous_status_seconds),
        )
    if event.durations.total_seconds is not None:
        yield Fact("Since created", _duration(event.durations.total_seconds))
    if image.pipeline:
        yield Fact("Pipeline", image.pipeline)
    kind = " ".join(filter(None, [image.type, f"({image.platform})" if image.platform else None]))
    if kind:
        yield Fact("Type", kind)
    yield Fact("Region", image.region)
    yield Fact("Account", image.account)
    if event.watched != image.arn:
        yield Fact("Watching", event.watched)


def _duration(seconds: float | None) -> str:
    """As `duration_text`, but in days and hours from two days on: a lifecycle
    change 90 days after AVAILABLE reads "89d23h", not "2159h18m"."""
    if seconds is None or seconds < 2 * 86400:
        return duration_text(seconds)
    hours = round(seconds) // 3600
    return f"{hours // 24}d{hours % 24:02d}h"


def _failure(context: Mapping[str, object]) -> Iterable[Fact]:
    step = _text(context.get("failedStep"))
    if step:
        yield Fact("Failed step", step)
    component = context.get("componentFailure")
    if isinstance(component, Mapping):
        arn = _text(component.get("componentArn"))
        if arn:
            yield Fact("Component", _component(arn))
        where = [
            f"{key} {value}"
            for key, value in (
                ("phase", _text(component.get("phaseName"))),
                ("step", _text(component.get("stepName"))),
                ("action", _text(component.get("action"))),
            )
            if value
        ]
        if where:
            yield Fact("Component step", ", ".join(where))
        error = _text(component.get("errorMessage"))
        if error:
            yield Fact("Error", error)
    distribution = context.get("distributionFailure")
    if isinstance(distribution, Mapping):
        error = _text(distribution.get("errorMessage"))
        if error:
            yield Fact("Distribution error", error)
        regions = distribution.get("regionFailures")
        if isinstance(regions, list):
            for failure in regions:
                if isinstance(failure, Mapping):
                    region = _text(failure.get("region")) or "?"
                    detail = ": ".join(
                        filter(
                            None,
                            [_text(failure.get("status")), _text(failure.get("errorMessage"))],
                        )
                    )
                    yield Fact(f"Failed in {region}", detail or "failed")


def _component(arn: str) -> str:
    """ "arn:…:component/agent-smoke-test/1.0.2/1" → "agent-smoke-test 1.0.2/1"."""
    _, _, path = arn.partition(":component/")
    parts = path.split("/")
    if len(parts) == 3 and all(parts):
        return f"{parts[0]} {parts[1]}/{parts[2]}"
    if len(parts) == 2 and all(parts):
        return f"{parts[0]} {parts[1]}"
    return arn


def _note(status: ImageStatus, previous: ImageStatus | None) -> str | None:
    if not status.known:
        return (
            f"{status} is a status ibwatch does not know yet; it is passed on as AWS reported it."
        )
    if previous is ImageStatus.FAILED and not status.terminal:
        return "The failed build was retried."
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
