"""YAML policy text read safely: bounded size, depth and alias expansion.

`yaml.safe_load` builds an alias as a second reference to the anchored value, which costs
nothing; but whatever walks the result afterwards (validation, JSON storage) walks every
reference, so nine levels of ten aliases each (the "billion laughs") become 10^9 nodes there.
Before anything is built, the text's events are counted, each alias as the size of what it
repeats, and the text is refused past `MAX_NODES` nodes or `MAX_DEPTH` levels (the composer
recurses per level, so depth is also a stack question).

Timestamps stay strings, as Cerbos (Go's YAML to JSON) reads them: a policy's `now` or a
constant date must reach CEL as the text written, and be storable as JSON.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_NODES", "YamlRefused", "load_all"]

MAX_NODES = 200_000
MAX_DEPTH = 64

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _PolicyLoader(_Loader):  # type: ignore[misc,valid-type]  # CSafeLoader is untyped
    """The safe loader without the implicit timestamp type, refusing duplicate keys.

    PyYAML keeps the last of two equal keys; Cerbos (Go's YAML reader) refuses the document.
    A second `condition` or `effect` that silently replaces the first is a policy that does
    not say what its author reads, so a duplicate is refused, naming the key and its line.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; keys written out override merged ones
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML refuses it below
                continue
            if duplicate:
                mark = key_node.start_mark
                raise YamlRefused(
                    f"duplicate key {str(key)[:80]!r} at line {mark.line + 1}, "
                    f"column {mark.column + 1}"
                )
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class YamlRefused(ValueError):
    """The text is not YAML, or too large, deep or alias-heavy to read; the message says which."""


def load_all(text: str) -> list[Any]:
    """The documents of `text` (empty ones left out), after `text` passed the limits."""
    _measure(text)
    try:
        return [doc for doc in yaml.load_all(text, Loader=_PolicyLoader) if doc is not None]
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not YAML: {str(exc).splitlines()[0]}") from None


def _measure(text: str) -> None:
    """Count the nodes `text` stands for, aliases expanded, without building any; and its
    depth, aliases expanded too: an alias of a deep collection placed deep adds the two (one
    anchor of 60 levels inside another, and so on, builds 1000s of levels from text that is
    never more than 60 deep, and whatever walks the result then overflows its stack)."""
    sizes: dict[str, int] = {}  # anchor -> nodes it stands for
    heights: dict[str, int] = {}  # anchor -> collection levels it stands for
    open_nodes: list[list[Any]] = []  # collections being read: [anchor, nodes, levels below]
    total = 0
    try:
        for event in yaml.parse(text, Loader=_PolicyLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                sizes.clear()  # anchors are per document
                heights.clear()
                continue
            if isinstance(event, yaml.CollectionStartEvent):
                if len(open_nodes) >= MAX_DEPTH:
                    raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels")
                open_nodes.append([event.anchor, 1, 0])
                count = 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, inner, below = open_nodes.pop()
                if anchor is not None:
                    sizes[anchor] = inner
                    heights[anchor] = below + 1
                if open_nodes:
                    open_nodes[-1][1] += inner
                    open_nodes[-1][2] = max(open_nodes[-1][2], below + 1)
                continue
            elif isinstance(event, yaml.ScalarEvent):
                count = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                    heights[event.anchor] = 0
            elif isinstance(event, yaml.AliasEvent):
                count = sizes.get(event.anchor or "", 1)  # an unknown one fails when built
                levels = heights.get(event.anchor or "", 0)
                if len(open_nodes) + levels > MAX_DEPTH:
                    raise YamlRefused(
                        f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded"
                    )
                if open_nodes:
                    open_nodes[-1][2] = max(open_nodes[-1][2], levels)
            else:
                continue
            total += count
            if total > MAX_NODES:
                raise YamlRefused(
                    f"stands for more than {MAX_NODES} values once its aliases are expanded"
                )
            if open_nodes and not isinstance(event, yaml.CollectionStartEvent):
                open_nodes[-1][1] += count
    except yaml.YAMLError as exc:
        raise YamlRefused(f"not YAML: {str(exc).splitlines()[0]}") from None
