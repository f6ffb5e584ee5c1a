"""A safe evaluator for user expressions (calculated fields, rules, group keys).

The source sketch ran ``eval()`` on expressions taken from a task's options: any
caller could run any code in the worker (``().__class__.__base__.__subclasses__()``
and friends). Here an expression is parsed with :mod:`ast` and only these nodes
are accepted, each turned into a small Python closure (user text is never handed
to ``eval``, ``exec`` or ``compile``; parts without field names are computed once,
when the expression is compiled):

* literals: numbers, strings, ``True``/``False``/``None``;
* field names of the item (``amount``); names starting with ``_`` are refused;
* arithmetic ``+ - * / // % **`` and unary ``- +``; ``+`` also joins strings;
* comparisons ``== != < <= > >= in not in``, boolean ``and or not``, parentheses;
* calls of :data:`FUNCTIONS` only (``abs round min max len lower upper float int``).

Everything else (attribute access, subscripts, other calls, lambdas,
comprehensions, conditional expressions, f-strings, ...) is refused with
:class:`~celeryref.errors.InvalidArguments` naming the construct. Work is bounded:
:data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels, :data:`MAX_NODES` nodes,
exponents up to :data:`MAX_EXPONENT`, numbers up to :data:`MAX_MAGNITUDE`, strings
up to :data:`MAX_STRING` characters, so no expression can run long or eat memory.

A valid expression that cannot be evaluated on one item (missing field, wrong
type, division by zero, result too large) raises :class:`EvaluationError`; the
processing functions count those per item instead of failing the job.

Longer than 250 lines: the grammar (the accepted nodes), its limits and the
closures it compiles to are one allowlist; split, a reader could no longer check
in one place that nothing else gets through.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celeryref.errors import InvalidArguments
from celeryref.mapreduce import operators as ops
from celeryref.mapreduce.operators import EvaluationError

__all__ = ["FUNCTIONS", "EvaluationError", "Expression", "compile_expression"]

#: Longest accepted expression, in characters.
MAX_LENGTH = 500
#: Deepest accepted syntax tree (``((((1))))`` is flat; ``-(-(-1))`` is 4 deep).
MAX_DEPTH = 32
#: Most syntax-tree nodes in one expression.
MAX_NODES = 200
MAX_EXPONENT = ops.MAX_EXPONENT
MAX_MAGNITUDE = ops.MAX_MAGNITUDE
MAX_STRING = ops.MAX_STRING
FUNCTIONS = ops.FUNCTIONS

Evaluator = Callable[[Mapping[str, Any]], Any]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: ops.add,
    ast.Sub: ops.sub,
    ast.Mult: ops.mul,
    ast.Div: ops.truediv,
    ast.FloorDiv: ops.floordiv,
    ast.Mod: ops.mod,
    ast.Pow: ops.power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: ops.neg,
    ast.UAdd: ops.pos,
    ast.Not: ops.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: ops.eq,
    ast.NotEq: ops.ne,
    ast.Lt: ops.lt,
    ast.LtE: ops.le,
    ast.Gt: ops.gt,
    ast.GtE: ops.ge,
    ast.In: ops.contains,
    ast.NotIn: ops.not_contains,
}
#: Human names of refused constructs, for error messages.
_REFUSED: dict[type[ast.AST], str] = {
    node: name
    for name, nodes in {
        "attribute access": (ast.Attribute,),
        "subscripts": (ast.Subscript,),
        "lambdas": (ast.Lambda,),
        "comprehensions": (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
        "conditional expressions": (ast.IfExp,),
        "assignment expressions": (ast.NamedExpr,),
        "f-strings": (ast.JoinedStr,),
        "star arguments": (ast.Starred,),
        "list literals": (ast.List,),
        "tuple literals": (ast.Tuple,),
        "dict literals": (ast.Dict,),
        "set literals": (ast.Set,),
        "await/yield": (ast.Await, ast.Yield, ast.YieldFrom),
        "bitwise operators": (
            ast.BitAnd,
            ast.BitOr,
            ast.BitXor,
            ast.LShift,
            ast.RShift,
            ast.Invert,
        ),
        "matrix multiplication": (ast.MatMult,),
        "identity comparisons (use == / !=)": (ast.Is, ast.IsNot),
    }.items()
    for node in nodes
}


def _refuse(node: ast.AST, source: str) -> InvalidArguments:
    what = _REFUSED.get(type(node), type(node).__name__)
    segment = ast.get_source_segment(source, node) if isinstance(node, ast.expr) else None
    where = f" ({segment})" if segment and len(segment) <= 60 else ""
    return InvalidArguments(f"expression {source!r}: {what}{where} not allowed")


@dataclass(frozen=True)
class Expression:
    """A checked expression; :meth:`evaluate` runs it against one item."""

    source: str
    #: Field names the expression reads.
    fields: frozenset[str]
    _evaluate: Evaluator

    def evaluate(self, item: Mapping[str, Any]) -> Any:
        """The value for ``item``; :class:`EvaluationError` when it has none."""
        return self._evaluate(item)


def compile_expression(source: object) -> Expression:
    """Check ``source`` and build its evaluator; :class:`InvalidArguments` if refused."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidArguments(f"an expression must be a non-empty string, got {source!r}")
    if len(source) > MAX_LENGTH:
        raise InvalidArguments(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidArguments(f"expression {source!r} is not valid: {exc.msg}") from None
    except Exception as exc:  # nesting the parser refuses (RecursionError, MemoryError, ...)
        raise InvalidArguments(f"expression {source!r} is not valid: {exc}") from None
    _check_size(tree)
    fields: set[str] = set()
    evaluate = _Compiler(source.strip(), fields).build(tree.body)
    return Expression(source, frozenset(fields), evaluate)


def _check_size(tree: ast.AST) -> None:
    """Refuse trees deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_NODES`."""
    stack = [(tree, 0)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise InvalidArguments(f"expression nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise InvalidArguments(f"expression has more than {MAX_NODES} parts")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Compiler:
    """Turns an accepted node into a closure; refuses any other node."""

    def __init__(self, source: str, fields: set[str]) -> None:
        self.source = source
        self.fields = fields
        #: Field references compiled so far; unchanged by a subtree = it is constant.
        self.references = 0

    def build(self, node: ast.AST) -> Evaluator:
        """The closure of ``node``; a subtree that reads no field is folded at once,
        so ``9**9**9`` is refused here rather than on every item."""
        references = self.references
        evaluate = self._build(node)
        if self.references > references or isinstance(node, ast.Constant):
            return evaluate
        try:
            value = evaluate({})
        except EvaluationError as exc:
            segment = ast.get_source_segment(self.source, node) or ""
            raise InvalidArguments(
                f"expression {self.source!r}: {segment[:60]!r} cannot be evaluated: {exc}"
            ) from None
        return lambda item: value

    def _build(self, node: ast.AST) -> Evaluator:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op, left, right = _BINARY[type(node.op)], self.build(node.left), self.build(node.right)
            return lambda item: op(left(item), right(item))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            unary, operand = _UNARY[type(node.op)], self.build(node.operand)
            return lambda item: unary(operand(item))
        if isinstance(node, ast.BoolOp):
            return self._boolean(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            raise _refuse(node.op, self.source)
        raise _refuse(node, self.source)

    def _constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        if value is not None and not isinstance(value, bool | int | float | str):
            raise InvalidArguments(
                f"expression {self.source!r}: {type(value).__name__} literals not allowed"
            )
        try:
            value = ops.check(value)
        except EvaluationError as exc:
            raise InvalidArguments(f"expression {self.source!r}: literal {exc}") from None
        return lambda item: value

    def _name(self, node: ast.Name) -> Evaluator:
        name = node.id
        if name.startswith("_"):
            raise InvalidArguments(
                f"expression {self.source!r}: name {name!r} not allowed (starts with '_')"
            )
        if name in FUNCTIONS:
            raise InvalidArguments(f"expression {self.source!r}: function {name!r} must be called")
        self.fields.add(name)
        self.references += 1
        return lambda item: ops.field(item, name)

    def _boolean(self, node: ast.BoolOp) -> Evaluator:
        parts = [self.build(value) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda item: ops.all_of(parts, item)
        return lambda item: ops.any_of(parts, item)

    def _compare(self, node: ast.Compare) -> Evaluator:
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise _refuse(op, self.source)
        tests = [_COMPARE[type(op)] for op in node.ops]
        operands = [self.build(node.left), *(self.build(c) for c in node.comparators)]
        if len(tests) == 1:  # the common case, without the chain loop
            test, left, right = tests[0], operands[0], operands[1]
            return lambda item: test(left(item), right(item))
        return lambda item: ops.chain_compare(tests, operands, item)

    def _call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = ast.get_source_segment(self.source, node.func) or type(node.func).__name__
            raise InvalidArguments(
                f"expression {self.source!r}: call of {what[:60]!r} not allowed "
                f"(functions: {', '.join(sorted(FUNCTIONS))})"
            )
        name = node.func.id
        if node.keywords:
            raise InvalidArguments(f"expression {self.source!r}: keyword arguments not allowed")
        function, low, high = FUNCTIONS[name]
        if not low <= len(node.args) <= high:
            raise InvalidArguments(
                f"expression {self.source!r}: {name}() takes {low}..{high} arguments, "
                f"got {len(node.args)}"
            )
        args = [self.build(arg) for arg in node.args]
        return lambda item: function(*(arg(item) for arg in args))
