"""A tiny SOQL subset: tokenizer, recursive-descent parser and evaluator (no ``eval``).

Grammar (keywords case-insensitive)::

    SELECT field {, field} | COUNT()  FROM object
      [WHERE cond]  [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] {, ...}]
      [LIMIT n] [OFFSET n]
    cond    := term {AND term} | term {OR term}     -- mixing AND/OR needs parentheses, as in SOQL
    term    := NOT term | ( cond ) | field op literal | field [NOT] IN (literal, ...)
             | field LIKE 'pattern'
    op      := = | != | <> | < | <= | > | >=
    literal := 'string' | number | 2026-11-01 | 2026-11-01T00:00:00Z | true | false | null

The parser knows nothing about schemas; :func:`bind` resolves field names through a callback
(canonical spelling + field type) and type-checks literals the way Salesforce does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

__all__ = [
    "BoolOp",
    "Comparison",
    "InList",
    "Like",
    "Literal",
    "Not",
    "OrderItem",
    "Query",
    "SoqlError",
    "SoqlFieldError",
    "SoqlSyntaxError",
    "bind",
    "matches",
    "parse",
    "sort_rows",
]


class SoqlError(ValueError):
    """Base class; ``error_code`` is the Salesforce errorCode to answer with."""

    error_code = "MALFORMED_QUERY"


class SoqlSyntaxError(SoqlError):
    error_code = "MALFORMED_QUERY"


class SoqlFieldError(SoqlError):
    error_code = "INVALID_FIELD"


# ---------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | date | datetime | boolean | null
    value: Any
    raw: str = ""  # string body as written (escapes kept), used by LIKE


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    field: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    field: str
    pattern: Literal


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr = Comparison | InList | Like | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    count_only: bool = False


# ---------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>[+-]?\d+(?:\.\d+)?(?![\w.]))
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
        "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL",
    }
)  # fmt: skip


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int

    @property
    def keyword(self) -> str | None:
        upper = self.text.upper()
        return upper if self.kind == "ident" and upper in _KEYWORDS else None


def _syntax_error(text: str, pos: int, message: str) -> SoqlSyntaxError:
    caret = " " * pos + "^"
    return SoqlSyntaxError(f"\n{text}\n{caret}\nERROR at Row:1:Column:{pos + 1}\n{message}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.lastgroup is None:
            raise _syntax_error(text, pos, f"unexpected token: '{text[pos:].split()[0]}'")
        if match.lastgroup != "ws":
            tokens.append(_Token(match.lastgroup, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("eof", "<EOF>", len(text)))
    return tokens


def _unescape(body: str, *, like: bool) -> str:
    """Decode SOQL backslash escapes; with ``like`` keep ``\\%``/``\\_`` escaped."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
        elif nxt in "%_":
            out.append("\\" + nxt if like else nxt)
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 4
        else:
            raise ValueError(
                f"Invalid string literal '{body}'. Illegal character sequence '\\{nxt}'"
            )
        i += 2
    return "".join(out)


def _parse_datetime(text: str) -> datetime:
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|([+-])(\d{2}):?(\d{2}))",
        text,
    )
    if match is None:
        raise ValueError(text)
    day, hh, mm, ss, frac, zone, sign, zh, zm = match.groups()
    tz = UTC
    if zone != "Z":
        delta = timedelta(hours=int(zh), minutes=int(zm))
        tz = timezone(-delta if sign == "-" else delta)
    base = date.fromisoformat(day)
    micro = int((frac or "0").ljust(6, "0"))
    value = datetime(base.year, base.month, base.day, int(hh), int(mm), int(ss), micro, tzinfo=tz)
    return value.astimezone(UTC)


# ---------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def error(self, token: _Token | None = None) -> SoqlSyntaxError:
        token = token or self.tok
        return _syntax_error(self.text, token.pos, f"unexpected token: '{token.text}'")

    def advance(self) -> _Token:
        token = self.tok
        self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.tok.keyword in words

    def expect_keyword(self, word: str) -> None:
        if self.tok.keyword != word:
            raise self.error()
        self.advance()

    def expect_punct(self, char: str) -> None:
        if self.tok.kind != "punct" or self.tok.text != char:
            raise self.error()
        self.advance()

    def field(self) -> str:
        token = self.tok
        if token.kind != "ident" or token.keyword is not None:
            raise self.error()
        self.advance()
        return token.text

    def integer(self) -> int:
        token = self.tok
        if token.kind != "number" or not token.text.isdigit():
            raise self.error()
        self.advance()
        return int(token.text)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        count_only = False
        if self.tok.kind == "ident" and self.tok.text.upper() == "COUNT":
            self.advance()
            self.expect_punct("(")
            self.expect_punct(")")
            count_only = True
        else:
            fields.append(self.field())
            while self.tok.text == "," and self.tok.kind == "punct":
                self.advance()
                fields.append(self.field())
        lowered = [f.lower() for f in fields]
        for idx, name in enumerate(lowered):
            if name in lowered[:idx]:
                raise _syntax_error(self.text, 0, f"duplicate field selected: {fields[idx]}")
        self.expect_keyword("FROM")
        sobject = self.field()
        if "." in sobject:
            raise self.error(self.tokens[self.i - 1])
        where = None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                order.append(self.order_item())
        limit = offset = None
        if self.at_keyword("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.at_keyword("OFFSET"):
            self.advance()
            offset = self.integer()
        if self.tok.kind != "eof":
            raise self.error()
        return Query(tuple(fields), sobject, where, tuple(order), limit, offset, count_only)

    def order_item(self) -> OrderItem:
        name = self.field()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        nulls_last = descending
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.error()
            nulls_last = self.advance().text.upper() == "LAST"
        return OrderItem(name, descending, nulls_last)

    def condition(self) -> Expr:
        operands = [self.term()]
        joiner: str | None = None
        while self.at_keyword("AND", "OR"):
            word = self.tok.text.upper()
            if joiner is not None and word != joiner:
                raise self.error()  # SOQL requires parentheses when mixing AND and OR
            joiner = word
            self.advance()
            operands.append(self.term())
        if joiner is None:
            return operands[0]
        return BoolOp(joiner, tuple(operands))

    def term(self) -> Expr:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.term())
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        name = self.field()
        if self.at_keyword("NOT", "IN"):
            negated = self.advance().text.upper() == "NOT"
            if negated:
                self.expect_keyword("IN")
            self.expect_punct("(")
            values = [self.literal()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return InList(name, tuple(values), negated)
        if self.at_keyword("LIKE"):
            self.advance()
            pattern = self.literal()
            if pattern.kind != "string":
                raise self.error(self.tokens[self.i - 1])
            return Like(name, pattern)
        if self.tok.kind != "op":
            raise self.error()
        op = self.advance().text
        return Comparison(name, "!=" if op == "<>" else op, self.literal())

    def literal(self) -> Literal:
        token = self.tok
        try:
            if token.kind == "string":
                body = token.text[1:-1]
                value = Literal("string", _unescape(body, like=False), body)
                _unescape(body, like=True)
            elif token.kind == "number":
                text = token.text
                number: int | float = float(text) if "." in text else int(text)
                value = Literal("number", number)
            elif token.kind == "date":
                value = Literal("date", date.fromisoformat(token.text))
            elif token.kind == "datetime":
                value = Literal("datetime", _parse_datetime(token.text))
            elif token.keyword in ("TRUE", "FALSE"):
                value = Literal("boolean", token.keyword == "TRUE")
            elif token.keyword == "NULL":
                value = Literal("null", None)
            else:
                raise self.error()
        except ValueError as exc:
            if isinstance(exc, SoqlError):
                raise
            raise _syntax_error(self.text, token.pos, str(exc)) from exc
        self.advance()
        return value


def parse(text: str) -> Query:
    """Parse SOQL text into a :class:`Query`; raises :class:`SoqlSyntaxError`."""
    if not text or not text.strip():
        raise SoqlSyntaxError("A query string has to be specified")
    return _Parser(text).parse()


# ---------------------------------------------------------------------------- binding

STRING_TYPES = frozenset(
    {"id", "string", "textarea", "picklist", "multipicklist", "url", "email", "phone", "reference"}
)
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})
_LITERAL_KIND_FOR_TYPE: dict[str, str] = {
    **dict.fromkeys(STRING_TYPES, "string"),
    **dict.fromkeys(NUMBER_TYPES, "number"),
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
}
_TYPE_WORDING = {"datetime": "dateTime"}

Resolver = Callable[[str], tuple[str, str]]
"""Maps a field path as written to ``(canonical path, field type)``; raises SoqlFieldError."""


def bind(
    query: Query, resolve: Resolver, normalize_id: Callable[[str], str | None] | None = None
) -> Query:
    """Resolve every field through ``resolve`` and type-check the literals against it."""
    types: dict[str, str] = {}

    def canon(name: str) -> str:
        path, ftype = resolve(name)
        types[path] = ftype
        return path

    def check(path: str, lit: Literal) -> Literal:
        ftype = types[path]
        if lit.kind == "null":
            return lit
        wanted = _LITERAL_KIND_FOR_TYPE.get(ftype, "string")
        if lit.kind != wanted:
            wording = "string" if wanted == "string" else _TYPE_WORDING.get(ftype, ftype)
            quoted = "should" if wanted == "string" else "should not"
            quoted += " be enclosed in quotes"
            raise SoqlFieldError(
                f"value of filter criterion for field '{path}' must be of type {wording} "
                f"and {quoted}"
            )
        if ftype in ("id", "reference") and normalize_id is not None:
            normalized = normalize_id(lit.value)
            if normalized is None:
                raise SoqlFieldError(f"invalid ID field: {lit.value}")
            return replace(lit, value=normalized)
        return lit

    def walk(expr: Expr) -> Expr:
        if isinstance(expr, Comparison):
            path = canon(expr.field)
            return Comparison(path, expr.op, check(path, expr.value))
        if isinstance(expr, InList):
            path = canon(expr.field)
            return InList(path, tuple(check(path, v) for v in expr.values), expr.negated)
        if isinstance(expr, Like):
            path = canon(expr.field)
            if types[path] not in STRING_TYPES or types[path] in ("id", "reference"):
                raise SoqlFieldError(f"invalid operator on {types[path]} field: {path} LIKE")
            return Like(path, expr.pattern)
        if isinstance(expr, Not):
            return Not(walk(expr.operand))
        return BoolOp(expr.op, tuple(walk(e) for e in expr.operands))

    fields = tuple(canon(f) for f in query.fields)
    where = walk(query.where) if query.where is not None else None
    order = tuple(replace(item, field=canon(item.field)) for item in query.order_by)
    return replace(query, fields=fields, where=where, order_by=order)


# ---------------------------------------------------------------------------- evaluation

Getter = Callable[[str], Any]
T = TypeVar("T")


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _like_regex(raw: str) -> re.Pattern[str]:
    text = _unescape(raw, like=True)
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "%_":
            out.append(re.escape(text[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _compare(value: Any, op: str, lit: Any) -> bool:
    if op == "=":
        return value is None if lit is None else value is not None and _norm(value) == _norm(lit)
    if op == "!=":
        return value is not None if lit is None else value is None or _norm(value) != _norm(lit)
    if value is None or lit is None:
        return False
    left, right = _norm(value), _norm(lit)
    try:
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def matches(expr: Expr | None, get: Getter) -> bool:
    """Evaluate a bound WHERE expression against one row (``get(path) -> value``)."""
    if expr is None:
        return True
    if isinstance(expr, Comparison):
        return _compare(get(expr.field), expr.op, expr.value.value)
    if isinstance(expr, InList):
        value = get(expr.field)
        found = value is not None and any(
            _norm(value) == _norm(v.value) for v in expr.values if v.value is not None
        )
        return not found if expr.negated else found
    if isinstance(expr, Like):
        value = get(expr.field)
        return value is not None and _like_regex(expr.pattern.raw).fullmatch(str(value)) is not None
    if isinstance(expr, Not):
        return not matches(expr.operand, get)
    if expr.op == "AND":
        return all(matches(e, get) for e in expr.operands)
    return any(matches(e, get) for e in expr.operands)


def sort_rows(
    rows: list[T], order_by: Sequence[OrderItem], get: Callable[[T, str], Any]
) -> list[T]:
    """Stable multi-key sort following ORDER BY (ASC nulls first, DESC nulls last by default)."""
    result = list(rows)
    for item in reversed(order_by):
        # With reverse=True the lowest key ends up last, so flip the null group accordingly.
        null_key = (0,) if item.nulls_last == item.descending else (2,)

        def key(row: T, item: OrderItem = item, null_key: tuple[int] = null_key) -> tuple[Any, ...]:
            value = get(row, item.field)
            return null_key if value is None else (1, _norm(value))

        result.sort(key=key, reverse=item.descending)
    return result
