"""Hypothesis strategies the property tests share: arbitrary JSON, numbers at the edges."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Json:
    numbers: st.SearchStrategy[Any]  # integers past 64 bits, the given edges, NaN, ±Infinity
    scalars: st.SearchStrategy[Any]  # null, booleans, numbers, texts
    values: st.SearchStrategy[Any]  # scalars nested in lists and objects


def json_strategies(texts: st.SearchStrategy[str], edges: Sequence[int]) -> Json:
    numbers = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from(list(edges)),
        st.floats(allow_nan=True, allow_infinity=True),
    )
    scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)
        ),
        max_leaves=10,
    )
    return Json(numbers, scalars, values)


def lenient_json(value: Any) -> bytes:
    """JSON as a lenient sender writes it (NaN, Infinity and lone surrogates as escapes)."""
    return json.dumps(value).encode()
