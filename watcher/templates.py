"""Message text overrides: a user's `string.Template` filled from a transition.

A chat sink may be given a template such as `"$summary (pipeline $pipeline)"`; its
output replaces the platform's text slot. The standard library's `string.Template`
was chosen over Jinja2 on purpose: no new dependency, and a configuration file can
only name values, never run code. Unknown placeholders are refused when the
template is validated (at start-up), so rendering a validated template never fails.

Placeholders (every value is a string; absent values are ""):

    name                image name                       web-base
    version             version/build                    1.4.0/7
    build               build number                     7
    arn                 build-version ARN
    watched             the ARN as configured, or the version/pipeline ARN that found it
    region, account     from the ARN
    pipeline, type, platform
    status              current status                   AVAILABLE
    previous            previous status ("" on first sighting)
    reason              the status reason AWS gave
    failed_step         failureContext.failedStep
    failed_in           failureContext.imageStatus (the stage that failed)
    skipped             stages passed between two polls  TESTING, DISTRIBUTING
    in_previous_status  time spent in the previous status, e.g. 18m00s
    total               time since the build was created, e.g. 1h02m
    amis                region=AMI pairs                 us-east-1=ami-0a1…,eu-west-1=ami-0b2…
    containers          container image URIs, comma-separated
    summary             one line: "web-base 1.4.0/7 BUILDING → TESTING after 18m00s"
    id                  the event id (stable across retries)

Write `$$` for a literal dollar sign and `${name}` when a letter follows directly.
"""

from __future__ import annotations

from collections.abc import Callable
from string import Template

from watcher.model import Transition
from watcher.summary import duration_text, headline

FIELDS: tuple[str, ...] = (
    "name",
    "version",
    "build",
    "arn",
    "watched",
    "region",
    "account",
    "pipeline",
    "type",
    "platform",
    "status",
    "previous",
    "reason",
    "failed_step",
    "failed_in",
    "skipped",
    "in_previous_status",
    "total",
    "amis",
    "containers",
    "summary",
    "id",
)
"""Every placeholder a template may use, in documentation order."""


def template_fields(event: Transition) -> dict[str, str]:
    """The values a template can name, flat and human-readable (see module docstring)."""
    image = event.image
    context = event.current.failure_context or {}
    outputs = event.outputs
    durations = event.durations
    return {
        "name": image.name,
        "version": f"{image.version}/{image.build}",
        "build": str(image.build),
        "arn": image.arn,
        "watched": event.watched,
        "region": image.region,
        "account": image.account,
        "pipeline": image.pipeline or "",
        "type": image.type or "",
        "platform": image.platform or "",
        "status": event.current.status.value,
        "previous": event.previous.status.value if event.previous else "",
        "reason": event.current.reason or "",
        "failed_step": _scalar(context.get("failedStep")),
        "failed_in": _scalar(context.get("imageStatus")),
        "skipped": ", ".join(s.value for s in event.skipped),
        "in_previous_status": (
            duration_text(durations.in_previous_status_seconds) if event.previous else ""
        ),
        "total": (
            duration_text(durations.total_seconds) if durations.total_seconds is not None else ""
        ),
        "amis": ",".join(f"{a.region}={a.image}" for a in outputs.amis) if outputs else "",
        "containers": (
            ",".join(uri for c in outputs.containers for uri in c.image_uris) if outputs else ""
        ),
        "summary": headline(event),
        "id": event.id,
    }


def validate_template(text: str) -> str:
    """`text` if it is a valid template naming only known placeholders; otherwise a
    ValueError that says what is wrong and lists the placeholders there are."""
    template = Template(text)
    if not template.is_valid():
        line, column = _first_invalid(text)
        raise ValueError(
            f"message template: '$' at line {line}, column {column} starts no placeholder; "
            "write $$ for a literal dollar sign, or $name / ${name} for a value"
        )
    unknown = sorted(set(template.get_identifiers()) - set(FIELDS))
    if unknown:
        names = ", ".join(f"${name}" for name in unknown)
        known = ", ".join(f"${name}" for name in FIELDS)
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(f"message template: unknown placeholder{plural} {names}; known: {known}")
    return text


def render_template(
    text: str, event: Transition, *, escape: Callable[[str], str] | None = None
) -> str:
    """Fill `text` from `event`. Never raises: whatever is not a known placeholder is
    left as written (a validated template has none). `escape` is applied to every
    value, for platforms whose text is markup (Slack's `&`, `<`, `>`)."""
    values = template_fields(event)
    if escape is not None:
        values = {key: escape(value) for key, value in values.items()}
    return Template(text).safe_substitute(values)


def _scalar(value: object) -> str:
    return str(value) if isinstance(value, str | int | float) and value != "" else ""


def _first_invalid(text: str) -> tuple[int, int]:
    for match in Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            start = match.start("invalid")
            before = text[:start]
            line = before.count("\n") + 1
            return line, start - (before.rfind("\n") + 1)  # column of the '$', 1-based
    return 1, 1
