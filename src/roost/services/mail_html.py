"""The HTML a security mail's template may hold: a subset every parser reads the same way.

Where `{{ link }}` lands is checked by reading the template's markup, but a mail client reads
it with its own HTML5 parser. Wherever two parsers can disagree (`<!-->` is a comment start to
Python's `html.parser` and a whole empty comment to HTML5, so a link "inside an <a>" to one is
inside an `<img src>` to the other), the check could be steered. So the markup of a
`password_reset` or `email_verification` template is held to a small, unambiguous grammar:

- text, start tags and end tags only: no comment, doctype, CDATA or processing instruction
  (no `<!` or `<?`), no `<` that does not open a tag (`</ x>` included);
- attribute values quoted, with no `<` or `>` in them, and no attribute twice;
- no raw-text, foreign or page-changing element (script, style, textarea, title, svg, math,
  template, base, meta, form, ...), and no attribute that loads or sends to a URL (src,
  srcset, background, poster, action, formaction, data, ping, a `style` with `url(`, ...)
  except the `href` of an `<a>`;
- `{{ link }}` exactly once, as the whole `href` of an `<a>` that carries only
  `LINK_ANCHOR_ATTRIBUTES`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

_WS = "[\t\n\f\r ]"  # HTML's whitespace, no more: `<a\xa0href=...>` is one odd tag name to HTML5
_NAME = "[A-Za-z][A-Za-z0-9-]*"
_ATTRIBUTE = re.compile(
    rf"{_WS}+(?P<name>[A-Za-z_:][A-Za-z0-9_:.-]*)"
    rf"(?:{_WS}*={_WS}*(?:\"(?P<dq>[^\"<>]*)\"|'(?P<sq>[^'<>]*)'))?"
)
_START = re.compile(rf"<(?P<tag>{_NAME})(?P<attrs>(?:{_ATTRIBUTE.pattern})*){_WS}*/?>")
_END = re.compile(rf"</{_NAME}{_WS}*>")
_PLACEHOLDER_LINK = re.compile(r"\{\{\s*link\s*\}\}")
_REFUSED_TAGS = frozenset(
    {
        # raw text and foreign content: parsed by rules of their own
        *("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"),
        *("noscript", "plaintext", "svg", "math", "template"),
        # elements that change where links go, load or post something
        *("base", "meta", "link", "form", "object", "embed", "applet", "frame", "frameset"),
    }
)
_URL_ATTRIBUTES = frozenset(
    {
        *("src", "srcset", "lowsrc", "dynsrc", "background", "poster", "action", "formaction"),
        *("data", "ping", "codebase", "classid", "archive", "cite", "longdesc", "usemap"),
        *("manifest", "profile", "imagesrcset", "xlink:href", "xmlns", "http-equiv"),
    }
)
_STYLE_LOADS = re.compile(r"url|image|expression|@import|\\", re.IGNORECASE)
# The only attributes the link's <a> may carry besides href (`ping`, say, would post the link
# to another address when it is clicked).
LINK_ANCHOR_ATTRIBUTES = frozenset({"href", "class", "style", "title", "target", "rel"})


def link_markup_problem(markup: str) -> str | None:
    """Why `markup` is not a security template's HTML (a short phrase), or None when it keeps
    to the grammar above with `{{ link }}` once as the whole href of an `<a>`."""
    found = 0
    for tag, attributes in _tags(markup):
        if tag is None:
            return attributes[0][1] if attributes else "may not hold that markup"
        if tag in _REFUSED_TAGS:
            return f"may not hold a <{tag}> element"
        names = [name for name, _ in attributes]
        if len(set(names)) != len(names):
            return f"may not repeat an attribute of <{tag}>"
        for name, value in attributes:
            if problem := _attribute_problem(tag, name, value):
                return problem
        hrefs = [value for name, value in attributes if name == "href"]
        if hrefs and _PLACEHOLDER_LINK.search(hrefs[0]):
            if tag != "a" or _PLACEHOLDER_LINK.fullmatch(hrefs[0].strip()) is None:
                return "must hold {{ link }} as the whole href of an <a>"
            if extra := sorted(set(names) - LINK_ANCHOR_ATTRIBUTES):
                return f"may not give the link's <a> the attribute {extra[0]}"
            found += 1
    if found != 1 or len(_PLACEHOLDER_LINK.findall(markup)) != 1:
        return 'must hold {{ link }} once, as the whole href of an <a> (<a href="{{ link }}">)'
    return None


def _tags(markup: str) -> Iterator[tuple[str | None, list[tuple[str, str]]]]:
    """Each tag of `markup` as (lower-case name, [(attribute, value)]); an end tag as ("", []);
    anything outside the grammar as (None, [("", why)]), after which nothing more is read."""
    at = markup.find("<")
    while at != -1:
        if start := _START.match(markup, at):
            attrs = [
                (m["name"].lower(), m["dq"] if m["dq"] is not None else (m["sq"] or ""))
                for m in _ATTRIBUTE.finditer(start["attrs"])
            ]
            yield start["tag"].lower(), attrs
            at = start.end()
        elif end := _END.match(markup, at):
            yield "", []
            at = end.end()
        else:
            yield None, [("", _stray(markup, at))]
            return
        at = markup.find("<", at)


def _stray(markup: str, at: int) -> str:
    opening = markup[at : at + 2]
    if opening in ("<!", "<?"):
        return "may not hold comments, doctypes, CDATA or <? ... > (no <! or <?)"
    if opening == "</":
        return "may hold only plain end tags such as </p>"
    return (
        "may hold only plain tags with quoted attribute values and no < or > in them "
        "(write &lt; for a < in text)"
    )


def _attribute_problem(tag: str, name: str, value: str) -> str | None:
    if name in _URL_ATTRIBUTES or name.startswith("on"):
        return f"may not give <{tag}> the attribute {name}"
    if name == "style" and _STYLE_LOADS.search(html.unescape(value)):
        return f"may not load anything from the style of <{tag}>"
    if name != "href" and _PLACEHOLDER_LINK.search(value):
        return "must hold {{ link }} as the whole href of an <a>"
    return None
