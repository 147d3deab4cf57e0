"""A CEL parser and printer: the expression as a tree Roost can rewrite and partially evaluate.

The evaluator (`common-expression-language`) compiles text and keeps its tree to itself, so the
policy engine parses each condition here first. The tree lets it substitute constants and
globals as literals and inline variables before the text is compiled (no per-request value
conversion), check names against the Cerbos environment at load time, rename Cerbos functions
that clash with the evaluator's builtins, and, for PlanResources, evaluate what is known and
keep the resource part as a residual. `unparse` prints a tree back as fully parenthesised CEL.
"""

from __future__ import annotations

import math
import re

import msgspec

__all__ = [
    "Call",
    "CelSyntaxError",
    "Comprehension",
    "Ident",
    "Index",
    "ListLit",
    "Literal",
    "MapLit",
    "Node",
    "Select",
    "literal_of",
    "parse",
    "unparse",
]

MAX_DEPTH = 64  # deeper expressions are refused: a policy is not a stress test of the stack
MAX_LENGTH = 16_384


class CelSyntaxError(ValueError):
    """The text is not a CEL expression Roost accepts; the message says where."""


class Literal(msgspec.Struct, frozen=True):
    value: object  # None, bool, int, float, str or bytes
    kind: str  # "null" | "bool" | "int" | "uint" | "double" | "string" | "bytes"


class Ident(msgspec.Struct, frozen=True):
    name: str


class Select(msgspec.Struct, frozen=True):
    operand: Node
    field: str
    test_only: bool = False  # has(operand.field)


class Index(msgspec.Struct, frozen=True):
    operand: Node
    index: Node


class Call(msgspec.Struct, frozen=True):
    """Operators are calls too, named as in the CEL spec: `_&&_`, `_==_`, `!_`, `_?_:_`."""

    function: str
    args: tuple[Node, ...]
    target: Node | None = None


class Comprehension(msgspec.Struct, frozen=True):
    """The macros `all`, `exists`, `exists_one`, `map`, `filter` over `target`."""

    macro: str
    target: Node
    var: str
    args: tuple[Node, ...]  # predicate, or (filter, transform) for the 3-argument map


class ListLit(msgspec.Struct, frozen=True):
    items: tuple[Node, ...]


class MapLit(msgspec.Struct, frozen=True):
    entries: tuple[tuple[Node, Node], ...] = msgspec.field(default_factory=tuple)


Node = Literal | Ident | Select | Index | Call | Comprehension | ListLit | MapLit

MACROS = {"all", "exists", "exists_one", "map", "filter"}
BINARY = {
    "||": "_||_",
    "&&": "_&&_",
    "==": "_==_",
    "!=": "_!=_",
    "<": "_<_",
    "<=": "_<=_",
    ">": "_>_",
    ">=": "_>=_",
    "in": "@in",
    "+": "_+_",
    "-": "_-_",
    "*": "_*_",
    "/": "_/_",
    "%": "_%_",
}
SYMBOL = {name: sym for sym, name in BINARY.items()}
RESERVED = {
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<float>(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<hex>0[xX][0-9a-fA-F]+[uU]?)
  | (?P<int>\d+[uU]?)
  | (?P<string>[rRbB]{0,2}(?:\"\"\"|'''|"|'))
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[<>!+\-*/%?:.,\[\]{}()])
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


class _Token(msgspec.Struct):
    kind: str
    text: str
    value: object
    pos: int


def _read_string(src: str, start: int, prefix: str, quote: str) -> tuple[object, int]:
    raw = "r" in prefix.lower()
    is_bytes = "b" in prefix.lower()
    pos = start
    out: list[str] = []
    byte_out = bytearray()

    def put(text: str) -> None:
        if is_bytes:
            byte_out.extend(text.encode("utf-8"))
        else:
            out.append(text)

    while True:
        if pos >= len(src):
            raise CelSyntaxError(f"unterminated string at {start}")
        if src.startswith(quote, pos):
            pos += len(quote)
            break
        char = src[pos]
        if len(quote) == 1 and char in "\r\n":
            raise CelSyntaxError(f"newline in a string at {pos}")
        if char == "\\" and not raw:
            pos = _read_escape(src, pos, is_bytes, put, byte_out)
            continue
        if char == "\\" and raw:
            put(src[pos : pos + 2] if src[pos + 1 : pos + 2] == quote[0] else char)
            pos += 2 if src[pos + 1 : pos + 2] == quote[0] else 1
            continue
        put(char)
        pos += 1
    return (bytes(byte_out) if is_bytes else "".join(out)), pos


def _read_escape(src: str, pos: int, is_bytes: bool, put: object, byte_out: bytearray) -> int:
    assert callable(put)
    nxt = src[pos + 1 : pos + 2]
    if nxt in _ESCAPES:
        put(_ESCAPES[nxt])
        return pos + 2
    if nxt in ("x", "X"):
        digits = src[pos + 2 : pos + 4]
        if not re.fullmatch(r"[0-9a-fA-F]{2}", digits):
            raise CelSyntaxError(f"bad \\x escape at {pos}")
        if is_bytes:
            byte_out.append(int(digits, 16))
        else:
            put(chr(int(digits, 16)))
        return pos + 4
    if nxt in ("u", "U"):
        width = 4 if nxt == "u" else 8
        digits = src[pos + 2 : pos + 2 + width]
        if is_bytes or not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits):
            raise CelSyntaxError(f"bad \\{nxt} escape at {pos}")
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise CelSyntaxError(f"bad code point at {pos}")
        put(chr(code))
        return pos + 2 + width
    if re.fullmatch(r"[0-3][0-7][0-7]", src[pos + 1 : pos + 4]):
        code = int(src[pos + 1 : pos + 4], 8)
        if is_bytes:
            byte_out.append(code)
        else:
            put(chr(code))
        return pos + 4
    raise CelSyntaxError(f"bad escape at {pos}")


def _tokens(src: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(src):
        match = _TOKEN.match(src, pos)
        if match is None:
            raise CelSyntaxError(f"unexpected character {src[pos]!r} at {pos}")
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "ws":
            pos = match.end()
            continue
        if kind == "string":
            quote = text.lstrip("rRbB")
            literal, end = _read_string(src, match.end(), text[: len(text) - len(quote)], quote)
            kind = "bytes" if "b" in text.lower()[:2] else "string"
            tokens.append(_Token(kind, "", literal, pos))
            pos = end
            continue
        value: object = text
        if kind == "float":
            value = float(text)
        elif kind in ("int", "hex"):
            unsigned = text[-1] in "uU"
            digits = text.rstrip("uU")
            number = int(digits, 16) if kind == "hex" else int(digits)
            if number >= (2**64 if unsigned else 2**63 + 1):
                raise CelSyntaxError(f"integer out of range at {pos}")
            kind = "uint" if unsigned else "int"
            value = number
        tokens.append(_Token(kind, text, value, pos))
        pos = match.end()
    tokens.append(_Token("eof", "", None, len(src)))
    return tokens


class _Parser:
    def __init__(self, src: str) -> None:
        self.tokens = _tokens(src)
        self.pos = 0
        self.depth = 0

    def peek(self, text: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind in ("op", "ident") and token.text == text

    def take(self, text: str) -> bool:
        if self.peek(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            token = self.tokens[self.pos]
            found = token.text or token.kind
            raise CelSyntaxError(f"expected {text!r} at {token.pos}, found {found!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CelSyntaxError(f"expression nested deeper than {MAX_DEPTH}")

    def expr(self) -> Node:
        self.enter()
        cond = self.binary(0)
        if self.take("?"):
            then = self.binary(0)
            self.expect(":")
            other = self.expr()
            cond = Call("_?_:_", (cond, then, other))
        self.depth -= 1
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.multiplicative()
        left = self.binary(level + 1)
        while True:
            op = next((sym for sym in self._LEVELS[level] if self.peek(sym)), None)
            if op is None:
                return left
            self.pos += 1
            right = self.binary(level + 1)
            left = Call(BINARY[op], (left, right))

    def multiplicative(self) -> Node:
        left = self.unary()
        while True:
            op = next((sym for sym in ("*", "/", "%") if self.peek(sym)), None)
            if op is None:
                return left
            self.pos += 1
            left = Call(BINARY[op], (left, self.unary()))

    def unary(self) -> Node:
        if self.take("!"):
            self.enter()
            node = Call("!_", (self.unary(),))
            self.depth -= 1
            return node
        if self.take("-"):
            token = self.tokens[self.pos]
            if token.kind in ("int", "float") and not self._member_follows():
                self.pos += 1
                if token.kind == "int":
                    return Literal(-int(token.value), "int")  # type: ignore[call-overload]
                return Literal(-float(token.value), "double")  # type: ignore[arg-type]
            self.enter()
            node = Call("-_", (self.unary(),))
            self.depth -= 1
            return node
        return self.member()

    def _member_follows(self) -> bool:
        after = self.tokens[self.pos + 1]
        return after.kind == "op" and after.text in (".", "[")

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.take("."):
                name = self.ident()
                if self.take("("):
                    args = self.args(")")
                    node = self.method(node, name, args)
                else:
                    node = Select(node, name)
            elif self.take("["):
                index = self.expr()
                self.expect("]")
                node = Index(node, index)
            else:
                return node

    def method(self, target: Node, name: str, args: list[Node]) -> Node:
        if name in MACROS and args and isinstance(args[0], Ident):
            if name == "map" and len(args) in (2, 3):
                return Comprehension(name, target, args[0].name, tuple(args[1:]))
            if len(args) == 2:
                return Comprehension(name, target, args[0].name, (args[1],))
        return Call(name, tuple(args), target)

    def ident(self) -> str:
        token = self.tokens[self.pos]
        if token.kind != "ident":
            raise CelSyntaxError(f"expected a name at {token.pos}")
        self.pos += 1
        return token.text

    def args(self, close: str) -> list[Node]:
        items: list[Node] = []
        if self.take(close):
            return items
        while True:
            items.append(self.expr())
            if self.take(close):
                return items
            self.expect(",")
            if self.take(close):  # a trailing comma
                return items

    def primary(self) -> Node:
        token = self.tokens[self.pos]
        self.pos += 1
        kind = token.kind
        if kind == "int":
            if int(token.value) > 2**63 - 1:  # type: ignore[call-overload]
                raise CelSyntaxError(f"integer out of range at {token.pos}")
            return Literal(token.value, "int")
        if kind in ("uint", "string", "bytes"):
            return Literal(token.value, kind)
        if kind == "float":
            return Literal(token.value, "double")
        if kind == "ident":
            return self.named(token)
        if kind == "op":
            if token.text == "(":
                node = self.expr()
                self.expect(")")
                return node
            if token.text == "[":
                self.enter()
                items = self.args("]")
                self.depth -= 1
                return ListLit(tuple(items))
            if token.text == "{":
                return self.map_literal()
            if token.text == ".":
                return self.named(self.tokens[self.pos - 1], leading_dot=True)
        raise CelSyntaxError(f"unexpected {token.text or kind!r} at {token.pos}")

    def named(self, token: _Token, leading_dot: bool = False) -> Node:
        if leading_dot:
            token = self.tokens[self.pos]
            self.pos += 1
            if token.kind != "ident":
                raise CelSyntaxError(f"expected a name at {token.pos}")
        name = token.text
        if name in ("true", "false"):
            return Literal(name == "true", "bool")
        if name == "null":
            return Literal(None, "null")
        if name in RESERVED:
            raise CelSyntaxError(f"reserved word {name!r} at {token.pos}")
        if self.take("("):
            args = self.args(")")
            if name == "has":
                if len(args) != 1 or not isinstance(args[0], Select):
                    raise CelSyntaxError(f"has() takes one field selection, at {token.pos}")
                return Select(args[0].operand, args[0].field, test_only=True)
            return Call(name, tuple(args))
        return Ident(name)

    def map_literal(self) -> Node:
        self.enter()
        entries: list[tuple[Node, Node]] = []
        if not self.take("}"):
            while True:
                key = self.expr()
                self.expect(":")
                entries.append((key, self.expr()))
                if self.take("}"):
                    break
                self.expect(",")
                if self.take("}"):
                    break
        self.depth -= 1
        return MapLit(tuple(entries))


def parse(src: str) -> Node:
    """Parse one CEL expression; raise CelSyntaxError naming the position of the problem."""
    if len(src) > MAX_LENGTH:
        raise CelSyntaxError(f"expression longer than {MAX_LENGTH} characters")
    if "\x00" in src:
        raise CelSyntaxError("NUL character in the expression")
    parser = _Parser(src)
    node = parser.expr()
    token = parser.tokens[parser.pos]
    if token.kind != "eof":
        raise CelSyntaxError(f"unexpected {token.text or token.kind!r} at {token.pos}")
    return node


def _quote(text: str) -> str:
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return 'double("NaN")'
    if math.isinf(value):
        return 'double("Infinity")' if value > 0 else 'double("-Infinity")'
    text = repr(value)
    if "e" in text or "E" in text:
        mantissa, exponent = text.lower().split("e")
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}e{exponent}"
    return f"({text})" if text.startswith("-") else text


def unparse(node: Node) -> str:
    """Print the tree as CEL text that parses back to the same tree."""
    if isinstance(node, Literal):
        return _literal_text(node)
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Select):
        text = f"{unparse(node.operand)}.{node.field}"
        return f"has({text})" if node.test_only else text
    if isinstance(node, Index):
        return f"{unparse(node.operand)}[{unparse(node.index)}]"
    if isinstance(node, ListLit):
        return "[" + ", ".join(unparse(item) for item in node.items) + "]"
    if isinstance(node, MapLit):
        pairs = ", ".join(f"{unparse(k)}: {unparse(v)}" for k, v in node.entries)
        return "{" + pairs + "}"
    if isinstance(node, Comprehension):
        args = ", ".join([node.var, *(unparse(arg) for arg in node.args)])
        return f"{_operand(node.target)}.{node.macro}({args})"
    return _call_text(node)


def _literal_text(node: Literal) -> str:
    value = node.value
    if node.kind == "null":
        return "null"
    if node.kind == "bool":
        return "true" if value else "false"
    if node.kind == "int":
        return f"({value})" if int(value) < 0 else str(value)  # type: ignore[call-overload]
    if node.kind == "uint":
        return f"{value}u"
    if node.kind == "double":
        return _float_text(float(value))  # type: ignore[arg-type]
    if node.kind == "string":
        return _quote(str(value))
    assert isinstance(value, bytes)
    return 'b"' + "".join(f"\\x{byte:02x}" for byte in value) + '"'


def _operand(node: Node) -> str:
    text = unparse(node)
    return f"({text})" if isinstance(node, Call) and node.target is None else text


def _call_text(node: Call) -> str:
    name, args = node.function, node.args
    if name in SYMBOL and len(args) == 2:
        return f"({_operand(args[0])} {SYMBOL[name]} {_operand(args[1])})"
    if name == "!_":
        return f"(!{_operand(args[0])})"
    if name == "-_":
        return f"(-{_operand(args[0])})"
    if name == "_?_:_":
        return f"({_operand(args[0])} ? {_operand(args[1])} : {_operand(args[2])})"
    inner = ", ".join(unparse(arg) for arg in args)
    if node.target is not None:
        return f"{_operand(node.target)}.{name}({inner})"
    return f"{name}({inner})"


def literal_of(value: object) -> Node:
    """A JSON value as a CEL literal tree; numbers become doubles, as Cerbos reads JSON."""
    if value is None:
        return Literal(None, "null")
    if isinstance(value, bool):
        return Literal(value, "bool")
    if isinstance(value, int | float):
        return Literal(float(value), "double")
    if isinstance(value, str):
        return Literal(value, "string")
    if isinstance(value, list | tuple):
        return ListLit(tuple(literal_of(item) for item in value))
    if isinstance(value, dict):
        return MapLit(tuple((Literal(str(k), "string"), literal_of(v)) for k, v in value.items()))
    raise TypeError(f"not a JSON value: {type(value).__name__}")
