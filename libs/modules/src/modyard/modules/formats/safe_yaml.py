"""YAML from untrusted archives, with a budget on anchors and aliases.

PyYAML's safe loader shares one object between an anchor and its aliases, so a "billion laughs"
document (ten aliases of ten aliases of …) loads into a few kilobytes — and then expands to
gigabytes in the stored manifest, its JSON, and every reader downstream. Aliases have honest
uses (a schema repeated for two automations), so a few are allowed: the document is refused when
it holds more than ``MAX_ALIASES`` aliases, when it would expand to more than
``MAX_EXPANDED_NODES`` nodes once every alias is written out, or when an anchor contains an
alias of itself (a recursive structure no JSON can hold). The budget is checked on the composed
node graph, before any Python object is built.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000


class YamlBudgetExceeded(yaml.YAMLError):
    """The document uses more aliases, or expands to more nodes, than the budget allows."""


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs and recursive anchors (see the module doc)."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlBudgetExceeded(
                    f"it uses more than {MAX_ALIASES} YAML aliases (*name); write the values out "
                    "or reuse fewer anchors"
                )
        return super().compose_node(parent, index)

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: Node) -> None:
    """Count the nodes ``root`` stands for with every alias written out (memoised: each distinct
    node is visited once, so the check itself cannot be bombed)."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise YamlBudgetExceeded(
                "an anchor contains an alias of itself (a recursive structure); "
                "modules must be plain trees"
            )
        total = 1
        if isinstance(node, (SequenceNode, MappingNode)):
            in_progress.add(key)
            children = (
                node.value
                if isinstance(node, SequenceNode)
                else [part for pair in node.value for part in pair]
            )
            for child in children:
                total += size(child)
                if total > MAX_EXPANDED_NODES:
                    raise YamlBudgetExceeded(
                        f"its aliases expand it to more than {MAX_EXPANDED_NODES} values; "
                        "write the values out or reuse fewer anchors"
                    )
            in_progress.discard(key)
        sizes[key] = total
        return total

    size(root)


def load(text: str, loader: type[BoundedSafeLoader] = BoundedSafeLoader) -> Any:
    """One YAML document, safely and within the alias budget (``yaml.YAMLError`` otherwise)."""
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError as exc:
        # PyYAML composes nested collections recursively: thousands of '[' exhaust the stack.
        raise YamlBudgetExceeded("it is nested too deeply; flatten the document") from exc


__all__ = [
    "MAX_ALIASES",
    "MAX_EXPANDED_NODES",
    "BoundedSafeLoader",
    "YamlBudgetExceeded",
    "load",
]
