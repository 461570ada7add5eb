"""The bounds every body template renders within: what one rendering may spend, and the sandbox
that charges it.

A template reaches the service from the configuration file and from anyone holding the admin
token (``POST /api/v1/subscriptions``). Jinja2's sandbox keeps it from Python's internals, not from
spending memory and time: ``{{ s | replace("x", s) }}``, ``"%099999999d" % 1``, a macro that calls
itself twice, a ``{% set %}`` block filling a buffer in a loop, each of them a few characters,
would take gigabytes or hours. So a rendering has a budget, charged as it goes:

- every loop iteration (any loop, not only ``range()``) and every call (filters, methods, macros)
  counts, and a wall-clock deadline is checked at each of them;
- no value grows past :data:`MAX_VALUE_CHARS`: ``~``, ``+``, ``*``, ``%`` and every filter and
  method result are checked, and the calls that multiply sizes (``replace``, ``indent``,
  ``join``, ``translate``, format widths...) are estimated before they run;
- all text written (the body, ``{% set %}`` blocks and macro bodies together) is counted;
- numbers passed to filters and methods are at most :data:`MAX_NUMBER_ARGUMENT`.

The body itself is bounded by the caller (``MAX_OUTPUT_CHARS`` in template.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import update_wrapper
from typing import Any, Final

from jinja2 import Environment, nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_RANGE: Final = 1000
"""The most items one ``range()`` in a template may have."""
MAX_ITERATIONS: Final = 10_000
"""The most loop iterations one rendering may go through, every loop together."""
MAX_CALLS: Final = 100_000
"""The most calls (filters, methods, macros) one rendering may make."""
MAX_VALUE_CHARS: Final = 256 * 1024
"""The largest string or list a template may build: no body is larger."""
MAX_WRITTEN_CHARS: Final = 1024 * 1024
"""All text one rendering writes: the body, ``{% set %}`` blocks and macro bodies together."""
MAX_NUMBER_ARGUMENT: Final = 64 * 1024
"""The largest number a filter or method takes (a width, a count)."""
MAX_RENDER_SECONDS: Final = 0.5
"""Wall-clock time one rendering may take; the counted bounds keep real templates far below."""
_MAX_ESTIMATE: Final = 4 * MAX_VALUE_CHARS
"""What a size-multiplying call may be expected to build (estimates are pessimistic)."""


@dataclass(slots=True)
class _Allowance:
    """What a rendering has left of one kind of spending, and what running out of it says."""

    left: int
    exhausted: str

    def spend(self, amount: int = 1) -> None:
        self.left -= amount
        if self.left < 0:
            raise SecurityError(self.exhausted)


@dataclass(slots=True)
class _Budget:
    iterations: _Allowance
    calls: _Allowance
    written: _Allowance
    deadline: float

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


_budget: ContextVar[_Budget] = ContextVar("template_budget")


@contextmanager
def rendering_budget(seconds: float = MAX_RENDER_SECONDS) -> Iterator[None]:
    """One rendering's budget, for the rendering inside the block (each thread its own)."""
    token = _budget.set(
        _Budget(
            iterations=_Allowance(MAX_ITERATIONS, f"more than {MAX_ITERATIONS} loop iterations"),
            calls=_Allowance(MAX_CALLS, f"more than {MAX_CALLS} calls"),
            written=_Allowance(
                MAX_WRITTEN_CHARS, f"more than {MAX_WRITTEN_CHARS} characters written"
            ),
            deadline=time.monotonic() + min(seconds, MAX_RENDER_SECONDS),
        )
    )
    try:
        yield
    finally:
        _budget.reset(token)


def _charge_iteration() -> None:
    budget = _budget.get()
    budget.iterations.spend()
    budget.tick()


def _charge_call() -> None:
    budget = _budget.get()
    budget.calls.spend()
    budget.tick()


def _checked(value: Any) -> Any:
    """``value``, unless it is a string, bytes or a collection larger than any body."""
    if isinstance(value, str | bytes | list | tuple | dict | set) and len(value) > MAX_VALUE_CHARS:
        raise SecurityError(f"a value longer than {MAX_VALUE_CHARS} characters")
    return value


class _CountedRange:
    """``range()`` for templates: short, and iterated through the rendering's budget."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise SecurityError(f"range() of more than {MAX_RANGE} items")

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[int]:
        return iter(self._range)


def _counted_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every ``{% for %}`` iterates: the template's iterable, each item charged."""
    for item in iterable:
        _charge_iteration()
        yield item


def _written(value: Any) -> str:
    """What every ``{{ ... }}`` and text run writes, charged to the rendering's written text."""
    text = str(value)
    _budget.get().written.spend(len(text))
    return text


def _size(value: Any) -> int:
    """Characters ``value`` stands for when a call turns it into text (one level deep)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, Mapping):
        return len(value) + sum(_size(v) for v in list(value.values())[:MAX_VALUE_CHARS])
    if isinstance(value, list | tuple | set | frozenset):
        return len(value) + sum(
            len(v) for v in list(value)[:MAX_VALUE_CHARS] if isinstance(v, str | bytes)
        )
    return 0


def _numbers(values: Iterable[Any]) -> list[int]:
    found = []
    for value in values:
        items: Iterable[Any] = [value]
        if isinstance(value, Mapping):
            items = value.values()
        elif isinstance(value, list | tuple):
            items = value
        for item in items:
            if isinstance(item, int | float) and not isinstance(item, bool):
                if abs(item) > MAX_NUMBER_ARGUMENT:
                    raise SecurityError(f"a number larger than {MAX_NUMBER_ARGUMENT} in a call")
                found.append(int(abs(item)))
    return found


_PRINTF_FIELD = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_FIELD = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def _format_estimate(template: str, values: list[Any]) -> int:
    """Characters a printf- or ``str.format``-style call may build: each placeholder padded to
    the widest width its specification writes or takes from the arguments (``%*d``,
    ``{:{w}}``); digits in the text around the placeholders are just text."""
    written: list[str] = []
    dynamic = False
    placeholders = 0
    for match in _PRINTF_FIELD.finditer(template):
        placeholders += 1
        for part in match.groups():
            if part == "*":
                dynamic = True
            elif part:
                written.append(part)
    for match in _BRACE_FIELD.finditer(template):
        placeholders += 1
        spec = match.group(1)
        dynamic = dynamic or "{" in spec
        written.extend(re.findall(r"\d+", spec.partition(":")[2]))
    if any(len(n) > 6 for n in written):
        raise SecurityError(f"a format width larger than {MAX_NUMBER_ARGUMENT}")
    widest = max([0, *(int(n) for n in written), *(_numbers(values) if dynamic else [])])
    if widest > MAX_NUMBER_ARGUMENT:
        raise SecurityError(f"a format width larger than {MAX_NUMBER_ARGUMENT}")
    return len(template) + placeholders * widest + sum(_size(v) for v in values)


_FORMATTERS: Final = frozenset({"format", "format_map"})
_PER_LINE: Final = frozenset({"indent", "expandtabs"})
WIDTH_FILTERS: Final = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice"})
"""Filters whose numbers are widths or counts (a colour or an id elsewhere is just a value)."""


def _estimate(name: str, values: list[Any], *, widths: bool) -> int:
    """A pessimistic size of what the call ``name(*values)`` builds, before it runs; with
    ``widths``, its numbers are widths or counts (of a string method or a width filter)."""
    if name in _FORMATTERS and values and isinstance(values[0], str):
        return _format_estimate(values[0], values[1:])
    sizes = sorted((_size(v) for v in values), reverse=True)
    numbers = _numbers(values) if widths else []
    widest = max(numbers, default=0)
    largest = sizes[0] if sizes else 0
    if name in _PER_LINE:
        # A width or tab size repeated on every line (or tab) of the text.
        first = values[0] if values else ""
        lines = first.count("\n") + first.count("\t") + 1 if isinstance(first, str) else 1
        return largest + lines * max(widest, sizes[1] if len(sizes) > 1 else 0)
    # replace, join, translate, wordwrap...: the largest input, every piece of it possibly
    # standing for the next largest; plus any width given.
    second = sizes[1] if len(sizes) > 1 else 0
    return sum(sizes) + largest * second + widest


def _guarded_call(name: str, call: Callable[[], Any], values: list[Any], *, widths: bool) -> Any:
    _charge_call()
    if _estimate(name, values, widths=widths) > _MAX_ESTIMATE:
        raise SecurityError(f"{name}() would build more than {_MAX_ESTIMATE} characters")
    return _checked(call())


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter, charged and checked; Jinja's pass-the-context marker is kept."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not _is_jinja_state(a)] + list(kwargs.values())
        return _guarded_call(
            name, lambda: function(*args, **kwargs), values, widths=name in WIDTH_FILTERS
        )

    return update_wrapper(guarded, function)


def _is_jinja_state(value: Any) -> bool:
    """Jinja's own arguments to pass-the-context filters, which are not values of the call."""
    return isinstance(value, EvalContext | Context | Environment)


class _ChargeEveryLoopAndWrite(NodeTransformer):
    """Rewrites a parsed template so that every loop, every write and every ``~`` goes through
    the budget: ``for x in xs`` iterates ``xs | _counted_loop``, ``{{ v }}`` writes
    ``v | _written``, ``a ~ b`` becomes ``(a ~ b) | _checked``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, "_counted_loop")
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            _filter(nodes.Const(child.data, lineno=child.lineno), "_written")
            if isinstance(child, nodes.TemplateData)
            else _filter(child, "_written")
            for child in node.nodes
        ]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(node, "_checked")


def _filter(node: nodes.Node, name: str) -> nodes.Filter:
    assert isinstance(node, nodes.Expr)
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox (immutable: no ``list.append`` growing a value in a loop) with the budget
    charged on every loop, call, write and size-changing operator."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}
        self.filters["_counted_loop"] = _counted_loop
        self.filters["_written"] = _written
        self.filters["_checked"] = _checked
        self.globals.pop("lipsum", None)  # paragraphs of text on demand: no use in a body
        self.globals["range"] = _CountedRange

    def add_filter(self, name: str, function: Callable[..., Any]) -> None:
        self.filters[name] = _guarded_filter(name, function)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        charged = _ChargeEveryLoopAndWrite().visit(tree)
        assert isinstance(charged, nodes.Template)
        return charged

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if __obj is _CountedRange:  # its own bound names the problem better than a number's
            _charge_call()
            # Jinja passes its loop and block variables along to every call (Context.call).
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return _CountedRange(*args, **kwargs)
        bound = getattr(__obj, "__self__", None)
        if bound is None:
            bound = getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        name = getattr(__obj, "__name__", "call")
        values = [*([bound] if isinstance(bound, str | bytes | list | tuple) else []), *args]
        values += [v for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")]
        sandboxed = ImmutableSandboxedEnvironment.call
        return _guarded_call(
            name,
            lambda: sandboxed(__self, __context, __obj, *args, **kwargs),
            values,
            widths=isinstance(bound, str | bytes),
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _budget.get().tick()
        if operator == "**":
            # Jinja reads a ** b ** c as (a ** b) ** c: bound the result's size, not the exponent.
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                if abs(left).bit_length() * right > 4096:
                    raise SecurityError("power larger than 4096 bits")
            elif isinstance(right, int | float) and abs(right) > 4096:
                raise SecurityError("power larger than 4096 bits")
            return left**right
        if operator == "%" and isinstance(left, str):
            values = list(right) if isinstance(right, tuple) else [right]
            if _format_estimate(left, values) > _MAX_ESTIMATE:
                raise SecurityError(
                    f"% formatting would build more than {_MAX_ESTIMATE} characters"
                )
            return _checked(left % right)
        if operator == "*":
            for count, other in ((left, right), (right, left)):
                if (
                    isinstance(count, int)
                    and isinstance(other, str | list | tuple)
                    and count * max(len(other), 1) > MAX_NUMBER_ARGUMENT
                ):
                    raise SecurityError(f"repetition longer than {MAX_NUMBER_ARGUMENT}")
            return left * right
        if operator == "+":
            return _checked(left + right)
        return left % right
