"""A small runner for a composite GitHub Action, for the tests of deploy/github-action.

It does what GitHub's runner does with a composite action's `runs.steps`, as far as
the action needs: evaluates each step's `if:` (an `if:` without a status function
means `success() && ...`) and the `${{ }}` of its `env:` and `with:`, runs its `run:`
as `shell: bash` does (`bash --noprofile --norc -eo pipefail FILE`, GitHub's "Workflow
syntax", `jobs.<job_id>.steps[*].shell`) with the variables a runner sets, reads the
step's GITHUB_OUTPUT file into `steps.<id>.outputs` (`key=value` and the multiline
`key<<DELIMITER` form) and its GITHUB_STEP_SUMMARY file, reads the workflow commands
it prints (annotations; `::stop-commands::`), and in the end resolves the action's
`outputs`. As GitHub's runner does, it reads the files after a failed step too
(actions/runner, ActionRunner.cs: `ProcessFiles` in a `finally`) and resolves the
outputs after a failed step (CompositeActionHandler.cs: `ProcessOutputs` after the
steps), and it reads a command from a line that starts with `::` after leading
spaces (ActionCommand.cs, TryParseV2: `message.TrimStart()`).

Expressions: exactly the subset the action uses; any other raises `Unsupported`, so
the action cannot grow an expression this runner would get wrong without a word.
Understood: string literals ('it''s'), `inputs.NAME` (a declared input),
`steps.ID.outputs.NAME` (a step declared earlier), `github.action_path`,
`github.action_repository` (as the runner sets it in a composite step's `env:`: the
action's OWNER/REPO, or '' for a local action), `runner.temp`, `success()`,
`failure()`, `always()`, `==` and `!=` (GitHub compares strings ignoring case and
coerces mixed types to numbers: null and '' are 0, any other string that is no number
NaN), `&&` and `||` (which yield one of their operands).

`uses:` steps: `actions/cache/restore@v6` and `actions/cache/save@v6` only, played on a
`CacheStore` the test seeds. A restore that hits links the stored directory at `path`
(a symbolic link, not a copy) and sets `cache-hit` to 'true'; a miss leaves `cache-hit`
unset, as actions/cache's restoreImpl.ts does ("`cache-hit` is intentionally not set to
`false` here", actions/cache issue 1466). Nothing is uploaded or downloaded.

Cancelling: `run(interrupt=Interrupt(...))` signals a step's bash process alone once a
line of its output holds a marker (then calls the interrupt's `then`, if any), as
GitHub's runner cancels a step
(ProcessInvoker.cs, CancelAndKillProcessTree: kill(pid, SIGINT), SIGTERM 7.5 s later).
That bash starts with SIGINT at its default, as the runner starts it, whatever this
test process was started with. `run(stop_after=ID)` ends the run after that step and
says which step would have run next.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Value = str | bool | float | None


class Unsupported(Exception):
    """An expression or a step this runner does not model."""


# ------------------------------------------------------------------ expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||\(|\)|\.)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
STATUS_FUNCTIONS = frozenset({"success", "failure", "always"})
Token = tuple[str, str]


@dataclass(frozen=True)
class Literal:
    value: str


@dataclass(frozen=True)
class Property:
    names: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    function: str


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Literal | Property | Call | Binary


def parse(source: str) -> Node:
    """The expression `source` (without `${{ }}`), or `Unsupported`."""
    parser = _Parser(source)
    node = parser.either()
    if parser.tokens:
        raise Unsupported(f"{source!r}: unexpected {parser.tokens[0][1]!r}")
    return node


class _Parser:
    """Recursive descent, loosest first: `||`, then `&&`, then `==` / `!=`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens: list[Token] = []
        at = 0
        while source[at:].strip():
            found = _TOKEN.match(source, at)
            if found is None:
                raise Unsupported(f"{source!r}: cannot read {source[at:]!r}")
            kind = next(k for k, v in found.groupdict().items() if v is not None)
            self.tokens.append((kind, found.group(kind)))
            at = found.end()

    def either(self) -> Node:
        node = self.both()
        while self._take("||"):
            node = Binary("||", node, self.both())
        return node

    def both(self) -> Node:
        node = self.comparison()
        while self._take("&&"):
            node = Binary("&&", node, self.comparison())
        return node

    def comparison(self) -> Node:
        node = self.primary()
        for op in ("==", "!="):
            if self._take(op):
                return Binary(op, node, self.primary())
        return node

    def primary(self) -> Node:
        if not self.tokens:
            raise Unsupported(f"{self.source!r}: ends too early")
        kind, text = self.tokens.pop(0)
        if kind == "string":
            return Literal(text[1:-1].replace("''", "'"))
        if kind != "name":
            raise Unsupported(f"{self.source!r}: unexpected {text!r}")
        if self._take("("):
            if not self._take(")") or text not in STATUS_FUNCTIONS:
                raise Unsupported(f"{self.source!r}: only success(), failure(), always()")
            return Call(text)
        names = [text]
        while self._take("."):
            if not self.tokens or self.tokens[0][0] != "name":
                raise Unsupported(f"{self.source!r}: a '.' must be followed by a name")
            names.append(self.tokens.pop(0)[1])
        return Property(tuple(names))

    def _take(self, op: str) -> bool:
        if self.tokens and self.tokens[0] == ("op", op):
            self.tokens.pop(0)
            return True
        return False


def calls_status_function(node: Node) -> bool:
    if isinstance(node, Call):
        return True
    if isinstance(node, Binary):
        return calls_status_function(node.left) or calls_status_function(node.right)
    return False


def truthy(value: Value) -> bool:
    if isinstance(value, float):
        return value != 0 and not math.isnan(value)
    return bool(value)


def as_text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return value


def _as_number(value: Value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    text = value.strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return math.nan


def equal(left: Value, right: Value) -> bool:
    """GitHub's `==`: strings ignoring case; otherwise both as numbers (NaN equals
    nothing)."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right) and not isinstance(left, float):
        return left == right
    return _as_number(left) == _as_number(right)


# ------------------------------------------------------------------ the run


@dataclass
class CacheStore:
    """What actions/cache would find: directories by exact key, and patterns the test
    seeds for a key it can describe but not compute (it carries a digest)."""

    entries: dict[str, Path] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str], Path]] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    """Every key a restore asked for, hit or miss."""
    saved: dict[str, Path] = field(default_factory=dict)

    def find(self, key: str) -> Path | None:
        if key in self.entries:
            return self.entries[key]
        return next((path for pattern, path in self.patterns if pattern.fullmatch(key)), None)


@dataclass
class StepRun:
    id: str
    outcome: str
    """success, failure or skipped."""
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Interrupt:
    """Signal step `step`'s bash with `signum` once its output has a line holding `when`;
    then call `then`, e.g. to let a program the step waits on go on once the signal is
    sure to have come."""

    step: str
    when: str
    signum: int = signal.SIGINT
    then: Callable[[], None] | None = None


@dataclass
class ActionRun:
    steps: list[StepRun]
    outputs: dict[str, str]
    summary: str
    """Every step's GITHUB_STEP_SUMMARY, in order: the job summary's part."""
    annotations: list[tuple[str, str]]
    """(`error` / `warning` / `notice`, message), as the workflow commands made them."""
    next_step: str | None = None
    """With `stop_after`: the id of the step that would have run next, if any."""

    @property
    def exit_code(self) -> int:
        """The first failed step's exit code (what the job log shows); 0 if none failed."""
        return next((s.exit_code or 1 for s in self.steps if s.outcome == "failure"), 0)

    @property
    def log(self) -> str:
        return "".join(s.log for s in self.steps)

    def step(self, step_id: str) -> StepRun:
        return next(s for s in self.steps if s.id == step_id)


class ActionRunner:
    """Runs one action.yml; `run()` runs it once with the inputs given."""

    def __init__(
        self,
        action_dir: Path,
        *,
        temp: Path,
        workspace: Path,
        cache: CacheStore,
        action_repository: str = "",
    ) -> None:
        self.action_dir = action_dir
        self.manifest: dict[str, Any] = yaml.safe_load((action_dir / "action.yml").read_text())
        self.temp = temp
        self.workspace = workspace
        self.cache = cache
        self.action_repository = action_repository
        self._files = 0

    def run(
        self,
        with_: Mapping[str, str],
        *,
        env: Mapping[str, str],
        interrupt: Interrupt | None = None,
        stop_after: str | None = None,
    ) -> ActionRun:
        declared: dict[str, Any] = self.manifest.get("inputs") or {}
        unknown = set(with_) - set(declared)
        if unknown:
            raise Unsupported(f"inputs not declared by the action: {sorted(unknown)}")
        inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
        inputs |= dict(with_)
        runner_env = {
            **env,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(self.action_dir),
            # Empty in a composite action's script steps (actions/runner issue 2473).
            "GITHUB_ACTION_REPOSITORY": "",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "RUNNER_OS": env.get("RUNNER_OS", "Linux"),
            "RUNNER_ARCH": env.get("RUNNER_ARCH", "X64"),
        }
        steps: list[StepRun] = []
        summary: list[str] = []
        annotations: list[tuple[str, str]] = []
        stopped = False
        next_step = None
        for index, spec in enumerate(self.manifest["runs"]["steps"]):
            step_id = spec.get("id", f"__{index}")
            context = self._context(inputs, steps)
            if not self._should_run(spec, context):
                steps.append(StepRun(step_id, "skipped"))
                continue
            if stopped:
                next_step = step_id
                break
            signal_it = interrupt if interrupt is not None and interrupt.step == step_id else None
            if "run" in spec:
                step, text = self._run_script(step_id, spec, context, runner_env, signal_it)
                summary.append(text)
                annotations += _commands(step.log)
            elif "uses" in spec:
                step = self._use(step_id, spec, context)
            else:
                raise Unsupported(f"step {step_id}: neither run nor uses")
            steps.append(step)
            stopped = step_id == stop_after
        context = self._context(inputs, steps)
        outputs = {
            name: context.interpolate(spec["value"])
            for name, spec in (self.manifest.get("outputs") or {}).items()
            if stop_after is None  # they read steps that did not run
        }
        return ActionRun(steps, outputs, "".join(summary), annotations, next_step)

    def _context(self, inputs: Mapping[str, str], steps: list[StepRun]) -> _Context:
        return _Context(
            inputs, steps, self.manifest, self.action_dir, self.temp, self.action_repository
        )

    def _should_run(self, spec: Mapping[str, Any], context: _Context) -> bool:
        condition = str(spec.get("if", "success()")).strip()
        if condition.startswith("${{") and condition.endswith("}}"):
            condition = condition[3:-2]
        node = parse(condition)
        if not calls_status_function(node):
            node = Binary("&&", Call("success"), node)
        return truthy(context.evaluate(node))

    def _run_script(
        self,
        step_id: str,
        spec: Mapping[str, Any],
        context: _Context,
        base: Mapping[str, str],
        interrupt: Interrupt | None,
    ) -> tuple[StepRun, str]:
        if spec.get("shell") != "bash":
            raise Unsupported(f"step {step_id}: only `shell: bash` is modelled")
        if "${{" in spec["run"]:
            raise Unsupported(f"step {step_id}: an expression inside run: (script injection)")
        self._files += 1
        files = {
            name: self.temp / f"_runner_file_commands/{name.lower()}_{self._files}"
            for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH")
        }
        for path in files.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        script = self.temp / f"_runner_file_commands/step_{self._files}.sh"
        script.write_text(spec["run"])
        step_env = {k: context.interpolate(str(v)) for k, v in (spec.get("env") or {}).items()}
        env = {**base, **{k: str(v) for k, v in files.items()}, **step_env}
        done = _bash(script, cwd=self.workspace, env=env, interrupt=interrupt)
        for name in ("GITHUB_ENV", "GITHUB_PATH"):
            if files[name].read_text():
                raise Unsupported(f"step {step_id} wrote {name}, which is not modelled")
        step = StepRun(
            step_id,
            "success" if done.returncode == 0 else "failure",
            exit_code=done.returncode,
            outputs=read_outputs(files["GITHUB_OUTPUT"].read_text()),
            log=done.stdout,
            env=step_env,
        )
        return step, files["GITHUB_STEP_SUMMARY"].read_text()

    def _use(self, step_id: str, spec: Mapping[str, Any], context: _Context) -> StepRun:
        given = {k: context.interpolate(str(v)) for k, v in (spec.get("with") or {}).items()}
        action = spec["uses"]
        if action not in ("actions/cache/restore@v6", "actions/cache/save@v6"):
            raise Unsupported(f"step {step_id}: uses {action}, which is not modelled")
        if set(given) != {"path", "key"}:
            raise Unsupported(f"step {step_id}: only `path` and `key` are modelled")
        path, key = Path(given["path"]), given["key"]
        if action.startswith("actions/cache/save"):
            self.cache.saved[key] = path
            return StepRun(step_id, "success")
        self.cache.restored.append(key)
        stored = self.cache.find(key)
        if stored is None:
            return StepRun(step_id, "success")  # a miss: no cache-hit output at all
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(stored, target_is_directory=True)
        return StepRun(step_id, "success", outputs={"cache-hit": "true"})


# Starts bash with SIGINT at its default: a process started in the background of a
# non-interactive shell (as a CI job may start this test run) inherits SIGINT ignored,
# and bash cannot trap a signal ignored when it started, as the runner's bash can.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def _bash(
    script: Path, *, cwd: Path, env: Mapping[str, str], interrupt: Interrupt | None
) -> subprocess.CompletedProcess[str]:
    """`shell: bash` on `script`; with `interrupt`, its bash process is signalled once
    a line of output holds the marker. Ended (the whole session) after 120 s."""
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    if interrupt is not None:  # the other steps save the 40 ms of a Python start
        command = [sys.executable, "-I", "-S", "-c", _DEFAULT_SIGINT, *command]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one log, in the order it was written
        text=True,
        start_new_session=True,  # so that a step left running can be ended whole
    ) as process:
        assert process.stdout is not None
        try:
            log = []
            if interrupt is not None:
                for line in process.stdout:
                    log.append(line)
                    if interrupt.when in line:
                        process.send_signal(interrupt.signum)  # bash alone, as the runner
                        if interrupt.then is not None:
                            interrupt.then()
                        break
            log.append(process.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return subprocess.CompletedProcess(command, process.returncode, "".join(log))


class _Context:
    """What an expression can read while a step is about to run."""

    def __init__(
        self,
        inputs: Mapping[str, str],
        steps: list[StepRun],
        manifest: Mapping[str, Any],
        action_dir: Path,
        temp: Path,
        action_repository: str,
    ) -> None:
        self.inputs = inputs
        self.steps = {s.id: s for s in steps}
        self.failed = any(s.outcome == "failure" for s in steps)
        self.declared_steps = [s.get("id") for s in manifest["runs"]["steps"]]
        self.action_dir = action_dir
        self.temp = temp
        self.action_repository = action_repository

    def interpolate(self, text: str) -> str:
        """`text` with each `${{ expression }}` replaced by its value as a string."""
        out, at = [], 0
        while (start := text.find("${{", at)) >= 0:
            end = text.find("}}", start)
            if end < 0:
                raise Unsupported(f"{text!r}: an unclosed ${{{{")
            out.append(text[at:start])
            out.append(as_text(self.evaluate(parse(text[start + 3 : end]))))
            at = end + 2
        return "".join(out) + text[at:]

    def evaluate(self, node: Node) -> Value:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Call):
            return {"success": not self.failed, "failure": self.failed, "always": True}[
                node.function
            ]
        if isinstance(node, Binary):
            left = self.evaluate(node.left)
            if node.op == "&&":
                return self.evaluate(node.right) if truthy(left) else left
            if node.op == "||":
                return left if truthy(left) else self.evaluate(node.right)
            same = equal(left, self.evaluate(node.right))
            return same if node.op == "==" else not same
        return self._property(node.names)

    def _property(self, names: tuple[str, ...]) -> Value:
        match names:
            case ("inputs", name):
                if name not in self.inputs:
                    raise Unsupported(f"inputs.{name}: no such input is declared")
                return self.inputs[name]
            case ("steps", step_id, "outputs", name):
                if step_id not in self.declared_steps:
                    raise Unsupported(f"steps.{step_id}: no step has that id")
                step = self.steps.get(step_id)
                if step is None:
                    raise Unsupported(f"steps.{step_id}: read before the step ran")
                return step.outputs.get(name)
            case ("github", "action_path"):
                return str(self.action_dir)
            case ("github", "action_repository"):
                return self.action_repository
            case ("runner", "temp"):
                return str(self.temp)
        raise Unsupported(f"{'.'.join(names)} is not modelled")


def read_outputs(text: str) -> dict[str, str]:
    """A GITHUB_OUTPUT file: `key=value` lines and `key<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    while lines:
        line = lines.pop(0)
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            value: list[str] = []
            while lines and lines[0] != delimiter:
                value.append(lines.pop(0))
            if not lines:
                raise ValueError(f"output {key!r}: no closing {delimiter!r}")
            lines.pop(0)
            outputs[key] = "\n".join(value)
        elif "=" in line:
            key, value_text = line.split("=", 1)
            outputs[key] = value_text
        else:
            raise ValueError(f"GITHUB_OUTPUT line is neither key=value nor key<<EOF: {line!r}")
    return outputs


_COMMAND = re.compile(r"::(?P<name>[^\s:]+)(?: (?P<properties>[^:]*))?::(?P<data>.*)")


def _commands(log: str) -> list[tuple[str, str]]:
    """The annotations a step's log makes, honouring `::stop-commands::TOKEN` until
    `::TOKEN::` (data unescaped: %25, %0D, %0A)."""
    found: list[tuple[str, str]] = []
    stopped: str | None = None
    for line in log.splitlines():
        command = _COMMAND.fullmatch(line.lstrip())
        if command is None:
            continue
        name, data = command["name"], command["data"]
        if stopped is not None:
            if name == stopped:
                stopped = None
            continue
        if name == "stop-commands":
            stopped = data
        elif name in ("error", "warning", "notice"):
            data = data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
            found.append((name, data))
    return found
