"""Name rules for datasets, dataset groups and API keys, the one normalisation used to
compare names (trimmed, case-folded), and the one reading of a reference as an id."""

from __future__ import annotations

import re
import unicodedata
import uuid

from keystead.errors import InvalidInput

# Dataset names travel unescaped in the Ubiq client's query strings (`ffs_name=…`), so
# only characters that survive that are allowed.
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
DATASET_NAME_RULE = (
    "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"
)


# A lone UTF-16 surrogate: a JSON escape (\ud800) can put one in a Python string, but UTF-8
# cannot encode it, so no database can store or compare it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def storable(text: str) -> bool:
    """Text a database can hold and compare: no NUL (PostgreSQL refuses it) and no lone
    surrogate. Both arrive only escaped inside JSON (a token's claims, a request body)."""
    return "\x00" not in text and _SURROGATE.search(text) is None


def as_id(ref: str) -> uuid.UUID | None:
    """``ref`` as an id (a UUID), or None when it does not have an id's form."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def name_key(name: str) -> str:
    """The form in which names are compared: trimmed, NFKC-normalised, case-folded."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def dataset_name(value: str) -> str:
    if not isinstance(value, str) or not _DATASET_NAME.fullmatch(value):
        raise _refused(f"dataset name {value!r} is not valid: {DATASET_NAME_RULE}")
    return value


def display_name(value: str, *, what: str, max_length: int = 256) -> str:
    """Free-text names (dataset groups must match Entra group names, which allow almost
    anything): trimmed, 1..max_length characters (also as name_key), no control
    characters. A refusal names the form field ``name``."""
    if not isinstance(value, str):
        raise _refused(f"{what} name must be a string")
    cleaned = value.strip()
    if not cleaned:
        raise _refused(f"{what} name must not be empty")
    if len(cleaned) > max_length:
        raise _refused(f"{what} name is {len(cleaned)} characters; at most {max_length}")
    # Names are compared (and kept unique) in their name_key form, which Unicode can make
    # longer ('ß' folds to 'ss', 'ﷺ' to 18 characters); that form must fit its column too.
    compared = len(name_key(cleaned))
    if compared > max_length:
        raise _refused(
            f"{what} name is {compared} characters once normalised for comparison "
            f"(NFKC, case-folded: 'ß' counts as 'ss'); at most {max_length}"
        )
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in cleaned):
        raise _refused(f"{what} name contains control or unassigned characters")
    return cleaned


def _refused(message: str) -> InvalidInput:
    """A refusal of a name, shown under the form's ``name`` field."""
    return InvalidInput(message, fields={"name": message})
