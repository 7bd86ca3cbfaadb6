"""Reads the metric selectors out of a PromQL expression (or a Grafana `label_values`
query), so that the tests can check each one against a live `/metrics` scrape.

Not a PromQL parser: a tokenizer that knows enough of the grammar to tell a metric
name from a function, an aggregation, a keyword, a label name (inside `{...}` or a
`by (...)` list) and a literal, and which range function (`rate`, `increase`, ...)
reads each selector, with the values its matchers compare labels to. It raises on
what it cannot place (unbalanced brackets, an unclosed string, `__name__` matchers,
an escape PromQL refuses) rather than returning less than is there.
The grammar followed: https://prometheus.io/docs/prometheus/latest/querying/basics/
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "start", "end", "atan2"}
)
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
"""Keywords a parenthesised list of label names may follow."""
AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
RANGE_FUNCTIONS_OF_COUNTERS = frozenset({"rate", "irate", "increase"})

_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<duration>"""
    + _DURATION
    + r"""(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<operator>=~|!~|==|!=|>=|<=|[-+*/%^=<>@,])
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
    """,
    re.VERBOSE,
)
_PAIRS = {"(": ")", "{": "}", "[": "]"}
_SET_OPERATORS = frozenset({"and", "or", "unless"})
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_PLAIN_ALTERNATIVES = re.compile(r"[\w:.-]+(?:\|[\w:.-]+)*")
"""A regex that only lists literal values (`a|b|c`): each alternative is a value."""


class Unreadable(ValueError):
    """An expression this reader cannot place every part of."""


@dataclass(frozen=True)
class Matcher:
    """`label op "value"` inside a selector's braces; `value` unquoted."""

    label: str
    op: str
    value: str

    @property
    def literals(self) -> tuple[str, ...]:
        """The label values it names: an `=`/`!=` matcher's value, or each alternative
        of an `=~`/`!~` regex that only lists values (`A|B`); none for another regex
        or a value holding a Grafana variable (`$sink`), which is not known here."""
        if "$" in self.value:
            return ()
        if self.op in ("=", "!="):
            return (self.value,)
        if _PLAIN_ALTERNATIVES.fullmatch(self.value):
            return tuple(self.value.split("|"))
        return ()


@dataclass(frozen=True)
class Selector:
    """A metric an expression reads."""

    metric: str
    matchers: tuple[Matcher, ...]
    range_function: str | None
    """The function its range (`[5m]`) is passed to, or None without a range."""
    within: tuple[str, ...] = ()
    """The functions and aggregations it is an argument of, outermost first."""

    @property
    def labels(self) -> frozenset[str]:
        """The label names its matchers filter on."""
        return frozenset(matcher.label for matcher in self.matchers)


@dataclass(frozen=True, eq=False)
class Grouping:
    """Label names a `by`, `without`, `on`, `ignoring`, `group_x` list or a
    `label_values(..., label)` names, and the selectors they apply to: those of the
    aggregation's argument (for `on`/`ignoring`/`group_x`: the whole expression)."""

    labels: frozenset[str]
    selectors: tuple[Selector, ...]
    keyword: str = "by"
    """`by`, `without`, `on`, `ignoring`, `group_left`, `group_right` or `label_values`."""
    operator: str = ""
    """For `on`/`ignoring`/`group_x`: the binary operator they qualify (`and`, `/`)."""


@dataclass(frozen=True)
class Query:
    selectors: tuple[Selector, ...]
    groupings: tuple[Grouping, ...]

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors)


@dataclass
class _Frame:
    """One open bracket pair and what was read inside it."""

    bracket: str
    function: str | None = None
    """The function or aggregation called with these parentheses."""
    grouping: tuple[str, frozenset[str]] | None = None
    """A `by (...)`/`without (...)` list given before these parentheses: (keyword, labels)."""
    selectors: list[Selector] = field(default_factory=list)
    after_comma: bool = False


def tokens(expression: str) -> list[tuple[str, str]]:
    """(kind, text) of each token but white space and comments; raises on a character
    no token starts with (an unclosed string among them)."""
    found = []
    position = 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise Unreadable(f"cannot read {expression[position:]!r} in {expression!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append((kind, match.group()))
        position = match.end()
    return found


def read(expression: str) -> Query:
    """The selectors of `expression` and the label lists it groups by; raises
    Unreadable on unbalanced brackets or a selector it cannot name."""
    items = tokens(expression)
    stack = [_Frame("")]
    everything: list[Selector] = []
    groupings: list[Grouping] = []
    # on/ignoring/group_x lists, with their operator: they apply to every selector.
    matching: list[tuple[str, frozenset[str], str]] = []
    pending: tuple[str, frozenset[str]] | None = None  # a by/without list before its (...)
    closed: list[Selector] | None = None  # an aggregation's selectors, just closed
    operator = ""  # the last binary operator read
    i = 0
    while i < len(items):
        kind, text = items[i]
        following = items[i + 1][1] if i + 1 < len(items) else ""
        just_closed, closed = closed, None
        if kind == "name" and text in LABEL_LISTS:
            if following != "(":
                if text not in ("group_left", "group_right"):
                    raise Unreadable(f"{text} without a label list in {expression!r}")
                i += 1
                continue
            labels, i = _label_list(items, i + 2, expression)
            if text not in ("by", "without"):
                matching.append((text, labels, operator))
            elif just_closed is not None:  # `sum(...) by (x)`
                groupings.append(Grouping(labels, tuple(just_closed), text))
            elif stack[-1].bracket == "" and stack[-1].function in AGGREGATIONS:
                pending = (text, labels)  # `sum by (x) (...)`: for the parentheses to come
            else:
                raise Unreadable(f"{text} ({', '.join(sorted(labels))}) of no aggregation")
            continue
        if kind == "name" and text in AGGREGATIONS and following in ("by", "without"):
            stack.append(_Frame("", function=text))  # its parentheses come after the list
            i += 1
            continue
        if kind == "name" and following == "(" and text.lower() not in KEYWORDS:
            stack.append(_Frame("(", function=text))
            i += 2
            continue
        if kind == "name" and text.lower() in _SET_OPERATORS:
            operator = text.lower()
        if kind == "name" and stack[-1].function == "label_values" and stack[-1].after_comma:
            groupings.append(
                Grouping(frozenset({text}), tuple(stack[-1].selectors), "label_values")
            )
            i += 1
            continue
        if kind == "name" and text.lower() not in KEYWORDS:
            selector, i = _selector(items, i, stack, expression)
            everything.append(selector)
            for open_frame in stack:
                open_frame.selectors.append(selector)
            continue
        if kind == "open" and text == "{":
            raise Unreadable(f"a selector without a metric name in {expression!r}")
        if kind == "open" and text == "(" and stack[-1].bracket == "":
            if len(stack) == 1 or stack[-1].function not in AGGREGATIONS:
                stack.append(_Frame(text))
            else:  # `sum by (x) (`: the aggregation's own parentheses
                stack[-1] = _Frame("(", function=stack[-1].function, grouping=pending)
                pending = None
            i += 1
            continue
        if kind == "open":
            stack.append(_Frame(text))
            i += 1
            continue
        if kind == "close":
            frame = stack.pop() if len(stack) > 1 else None
            if frame is None or _PAIRS.get(frame.bracket) != text:
                raise Unreadable(f"unbalanced {text!r} in {expression!r}")
            if frame.grouping is not None:
                keyword, labels = frame.grouping
                groupings.append(Grouping(labels, tuple(frame.selectors), keyword))
            if frame.function in AGGREGATIONS:
                closed = frame.selectors
            i += 1
            continue
        if kind == "operator" and text == ",":
            stack[-1].after_comma = True
        elif kind == "operator":
            operator = text
        if kind == "duration" and (i == 0 or items[i - 1][1] != "offset"):
            raise Unreadable(f"a duration outside a range or offset in {expression!r}")
        i += 1
    if len(stack) != 1:
        raise Unreadable(f"unclosed {stack[-1].bracket or stack[-1].function!r} in {expression!r}")
    for keyword, labels, qualified in matching:
        groupings.append(Grouping(labels, tuple(everything), keyword, qualified))
    return Query(tuple(everything), tuple(groupings))


def _label_list(
    items: list[tuple[str, str]], start: int, expression: str
) -> tuple[frozenset[str], int]:
    """The label names from `start` (after the opening parenthesis) to its `)`."""
    labels = set()
    i = start
    while i < len(items) and items[i][1] != ")":
        kind, text = items[i]
        if kind == "name":
            labels.add(text)
        elif text != ",":
            raise Unreadable(f"{text!r} in a label list of {expression!r}")
        i += 1
    if i == len(items):
        raise Unreadable(f"an unclosed label list in {expression!r}")
    return frozenset(labels), i + 1


def _selector(
    items: list[tuple[str, str]], start: int, stack: list[_Frame], expression: str
) -> tuple[Selector, int]:
    """The selector whose metric name is at `start`: its `{...}` matchers and its
    `[range]`, if any; and the index after it."""
    metric = items[start][1]
    matchers = []
    i = start + 1
    if i < len(items) and items[i][1] == "{":
        i += 1
        while i < len(items) and items[i][1] != "}":
            kind, text = items[i]
            if kind == "name":
                if text == "__name__":
                    raise Unreadable(f"a __name__ matcher in {expression!r}: name the metric")
                operator = items[i + 1][1] if i + 1 < len(items) else ""
                value = items[i + 2] if i + 2 < len(items) else ("", "")
                if operator not in ("=", "!=", "=~", "!~") or value[0] != "string":
                    raise Unreadable(f"a matcher of {text!r} that is not name-op-string")
                matchers.append(Matcher(text, operator, unquote(value[1], expression)))
                i += 3
                continue
            if text != ",":
                raise Unreadable(f"{text!r} among the matchers of {metric} in {expression!r}")
            i += 1
        if i == len(items):
            raise Unreadable(f"unclosed matchers of {metric} in {expression!r}")
        i += 1
    range_function = None
    if i < len(items) and items[i][1] == "[":
        i = _skip_range(items, i + 1, expression)
        range_function = stack[-1].function if stack[-1].bracket == "(" else None
        if range_function is None:
            raise Unreadable(f"a range of {metric} passed to no function in {expression!r}")
    within = tuple(frame.function for frame in stack if frame.function is not None)
    return Selector(metric, tuple(matchers), range_function, within), i


def unquote(literal: str, expression: str) -> str:
    """A string literal's value: a backquoted one as is; a quoted one with Go's escapes
    undone (PromQL's strings are Go's), raising on one PromQL refuses (`"\\."`) or
    one this reader does not undo (octal, hex, unicode)."""
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    value = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            value.append(char)
            i += 1
            continue
        escaped = body[i + 1]
        if escaped in _ESCAPES:
            value.append(_ESCAPES[escaped])
        elif escaped in ("\\", literal[0]):
            value.append(escaped)
        else:
            raise Unreadable(f"the escape \\{escaped} in {literal} of {expression!r}")
        i += 2
    return "".join(value)


def _skip_range(items: list[tuple[str, str]], start: int, expression: str) -> int:
    """The index after the `]` closing a range (`5m`, `$__rate_interval`, `1h:5m`)."""
    i = start
    while i < len(items) and items[i][1] != "]":
        kind, text = items[i]
        if kind not in ("duration", "variable", "number") and text != ":":
            raise Unreadable(f"{text!r} in a range of {expression!r}")
        i += 1
    if i == len(items) or i == start:
        raise Unreadable(f"an empty or unclosed range in {expression!r}")
    return i + 1
