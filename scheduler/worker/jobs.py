"""The `@job` decorator and the registry of the jobs a worker found in the modules it imported.

`@job` only marks the function (no process-global registry): `cronlease worker --import M`
imports M and collects every marked function of M and of the modules M brought in with it.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from scheduler.worker.policy import seconds

F = TypeVar("F", bound=Callable[..., Any])

MARK = "__cronlease_jobs__"
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_BASE = "1s"
DEFAULT_BACKOFF_CAP = "10m"


class GiveUp(Exception):
    """Raised by a job: this run cannot succeed; straight to the dead letters, no retry."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: Callable[..., Any]
    retries: int  # retries after the first attempt: at most retries + 1 attempts
    backoff_base_s: float
    backoff_cap_s: float
    timeout_s: float | None
    give_up_on: tuple[type[BaseException], ...]
    wants_run: bool  # the function has a parameter named `run`: it gets the Run

    def gives_up_on(self, error: BaseException) -> bool:
        return isinstance(error, (GiveUp, *self.give_up_on))


def job(
    name: str,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff_base: str | float = DEFAULT_BACKOFF_BASE,
    backoff_cap: str | float = DEFAULT_BACKOFF_CAP,
    timeout: str | float | None = None,
    give_up_on: Iterable[type[BaseException]] = (),
) -> Callable[[F], F]:
    """Register the function under `name`, the `job:` of schedules.yaml.

    It is called with the run's `args` (a mapping as keywords, a list as positional arguments)
    and, if it has a parameter named `run`, the Run (run id, schedule, fire time, trigger,
    attempt, `once`). Any exception fails the attempt: an instance of `give_up_on` (or GiveUp)
    dead-letters the run at once, others retry it up to `retries` times, after a delay drawn
    uniformly from 0 to min(backoff_cap, backoff_base * 2 ** (attempt - 1)). `timeout` (none by
    default) gives up on an attempt that runs longer (see scheduler/worker/engine.py).
    Durations: `1s`, `5m`, `1h30m`, `250ms`, or seconds as a number.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"job name {name!r}: a non-empty string, as schedules.yaml's `job:`")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"job {name!r}: retries={retries!r} must be a whole number >= 0")
    base_s = seconds(backoff_base, f"job {name!r}: backoff_base")
    cap_s = seconds(backoff_cap, f"job {name!r}: backoff_cap")
    timeout_s = None if timeout is None else seconds(timeout, f"job {name!r}: timeout")
    if timeout_s == 0:
        raise ValueError(f"job {name!r}: timeout must be more than 0 (or None for no timeout)")
    errors = tuple(give_up_on)
    for error in errors:
        if not (isinstance(error, type) and issubclass(error, BaseException)):
            raise ValueError(f"job {name!r}: give_up_on holds {error!r}, not an exception class")

    def mark(func: F) -> F:
        parameter = inspect.signature(func).parameters.get("run")
        wants_run = parameter is not None and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        spec = JobSpec(name, func, retries, base_s, cap_s, timeout_s, errors, wants_run)
        # A tuple, so that one function may be stacked under several names.
        setattr(func, MARK, (*getattr(func, MARK, ()), spec))
        return func

    return mark


class JobImportError(Exception):
    """A module given to --import could not be imported, or two jobs share a name."""


@dataclass(frozen=True)
class Registry:
    jobs: Mapping[str, JobSpec]
    modules: tuple[str, ...]

    def get(self, name: str) -> JobSpec | None:
        return self.jobs.get(name)

    def names(self) -> list[str]:
        return sorted(self.jobs)


def import_jobs(modules: Sequence[str]) -> Registry:
    """Import `modules` and collect their jobs (and those of the modules they imported)."""
    before = set(sys.modules)
    named: list[ModuleType] = []
    for name in modules:
        try:
            named.append(importlib.import_module(name))
        except Exception as error:  # a bug in a job module is the user's to see, in one line
            raise JobImportError(
                f"cannot import {name!r}: {type(error).__name__}: {error}"
            ) from error
    brought = [module for key, module in list(sys.modules.items()) if key not in before]
    found: dict[str, JobSpec] = {}
    for module in [*named, *brought]:
        for value in list(vars(module).values()):
            if not inspect.isroutine(value):
                continue
            for spec in getattr(value, MARK, ()):
                other = found.get(spec.name)
                if other is not None and other.func is not spec.func:
                    raise JobImportError(
                        f"two jobs are named {spec.name!r}: {_where(other.func)} and "
                        f"{_where(spec.func)}"
                    )
                found[spec.name] = spec
    return Registry(found, tuple(modules))


def _where(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"


def bind_args(spec: JobSpec, args: Any, run: object) -> inspect.BoundArguments:
    """The call of `spec` for a run's args; TypeError with a sentence when they do not fit
    (retrying would not help: the caller dead-letters the run)."""
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    if isinstance(args, dict):
        keywords = dict(args)
    elif isinstance(args, list):
        positional = list(args)
    elif args is not None:
        raise TypeError(f"args must be a mapping or a list, not {type(args).__name__}")
    if spec.wants_run:
        if "run" in keywords:
            raise TypeError("args has a key 'run', which is the name of the job's run parameter")
        keywords["run"] = run
    try:
        return inspect.signature(spec.func).bind(*positional, **keywords)
    except TypeError as error:
        raise TypeError(f"args do not fit {_where(spec.func)}: {error}") from None
