"""Format-preserving (FF1) dataset definitions as the Ubiq client reads them, their rules,
and the ready-made templates.

The arithmetic that decides how many key versions a definition can hold is the one in
the client protocol (§6.5): with input radix ``r_i``, output radix ``r_o`` and minimum
length ``L``, the first output character's index is at most
``D = (r_i**L - 1) // r_o**(L-1)``; the key number ``k`` is added as ``k << bits``, so
``2**bits > D`` and ``(k << bits) + D <= r_o - 1`` must hold for every key in use.
"""

from __future__ import annotations

import base64
import math
import secrets
import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keystead.errors import InvalidInput

DIGITS = string.digits
ALNUM = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM_UPPER = string.digits + string.ascii_uppercase
# Extra output symbols for alphanumeric inputs, so that the output alphabet is larger
# than the input one and leaves room for key numbers. '-' and ' ' are left out: they are
# the templates' passthrough characters.
_ALNUM_EXTRA = "!#$%&()*+,./:;<=>?@[]^_{|}~"

FF1_MIN_DOMAIN = 1_000_000  # NIST SP 800-38G Rev. 1: radix**minlen >= 10**6
MAX_INPUT_LENGTH = 255
MAX_CONFIG_DEPTH = 32  # data_type_config is a small settings object, not a document


class PassthroughRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["passthrough", "prefix", "suffix"]
    value: str | int
    priority: int

    @model_validator(mode="after")
    def _value_matches_type(self) -> PassthroughRule:
        if self.type == "passthrough" and not isinstance(self.value, str):
            raise ValueError("a passthrough rule's value is a string of characters")
        if self.type != "passthrough" and (isinstance(self.value, (str, bool)) or self.value < 0):
            # The Python client crashes on a string count such as "2".
            raise ValueError(f"a {self.type} rule's value is a non-negative integer count")
        return self


class FpeDefinition(BaseModel):
    """The structured dataset definition served by ``GET /api/v0/ffs`` (without ``name``)."""

    model_config = ConfigDict(extra="forbid")

    encryption_algorithm: Literal["FF1"] = "FF1"
    input_character_set: str = Field(min_length=2)
    output_character_set: str = Field(min_length=2)
    passthrough: str = ""
    passthrough_rules: list[PassthroughRule] = Field(default_factory=list)
    min_input_length: int = Field(ge=1)
    max_input_length: int = Field(ge=1, le=MAX_INPUT_LENGTH)
    msb_encoding_bits: int | None = Field(default=None, ge=0, le=16)
    tweak: str | None = None
    tweak_min_len: int = Field(default=6, ge=0, le=255)
    tweak_max_len: int = Field(default=32, ge=0, le=255)
    tweak_source: Literal["constant"] = "constant"
    input_pad_character: str | None = None
    input_encoding: Literal["base64", "base32"] | None = None
    data_type: str | None = None
    data_type_config: dict[str, Any] | None = None
    salt: str | None = None
    fpe_definable_type: str = "EfpeDefinition"

    @field_validator("data_type_config")
    @classmethod
    def _plain_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        _check_plain_json(value, depth=0)
        return value

    @model_validator(mode="after")
    def _check(self) -> FpeDefinition:
        _check_alphabets(self)
        _check_passthrough(self)
        if self.max_input_length < self.min_input_length:
            raise ValueError("max_input_length is smaller than min_input_length")
        r_i = len(self.input_character_set)
        if r_i**self.min_input_length < FF1_MIN_DOMAIN:
            need = next(n for n in range(1, 64) if r_i**n >= FF1_MIN_DOMAIN)
            raise ValueError(
                f"min_input_length {self.min_input_length} is below FF1's minimum of {need} "
                f"for a {r_i}-character input alphabet"
            )
        bits = first_character_bound(self).bit_length()
        if self.msb_encoding_bits is None:
            self.msb_encoding_bits = bits
        elif self.msb_encoding_bits < bits:
            raise ValueError(f"msb_encoding_bits must be at least {bits} for these alphabets")
        if self.tweak is None:
            self.tweak = base64.b64encode(secrets.token_bytes(16)).decode()
        _check_tweak(self)
        if self.salt is None:
            self.salt = base64.b64encode(secrets.token_bytes(32)).decode()
        return self


def _check_plain_json(value: Any, *, depth: int) -> None:
    """data_type_config is kept and served as it was given, so it must be JSON that can be
    written back: not nested past what the serializer (pydantic stops at a few hundred
    levels) takes, and no NaN or Infinity, which Python's parser accepts but JSON lacks."""
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"is nested more than {MAX_CONFIG_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("holds NaN or Infinity, which are not JSON numbers")
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            _check_plain_json(item, depth=depth + 1)


def _check_alphabets(d: FpeDefinition) -> None:
    for label, chars in (("input", d.input_character_set), ("output", d.output_character_set)):
        if len(set(chars)) != len(chars):
            raise ValueError(f"{label}_character_set repeats a character")
    if len(d.output_character_set) < len(d.input_character_set):
        raise ValueError("output_character_set must be at least as large as input_character_set")


def _check_passthrough(d: FpeDefinition) -> None:
    chars = set(d.passthrough)
    for rule in d.passthrough_rules:
        if rule.type == "passthrough":
            chars |= set(str(rule.value))
    clash = chars & (set(d.input_character_set) | set(d.output_character_set))
    if clash:
        raise ValueError(
            f"passthrough characters {''.join(sorted(clash))!r} also appear in an alphabet"
        )
    priorities = [rule.priority for rule in d.passthrough_rules]
    if len(set(priorities)) != len(priorities):
        raise ValueError("passthrough_rules priorities must be distinct")


def _check_tweak(d: FpeDefinition) -> None:
    try:
        raw = base64.b64decode(d.tweak or "", validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError("tweak must be standard base64") from exc
    if len(raw) < d.tweak_min_len or (d.tweak_max_len and len(raw) > d.tweak_max_len):
        raise ValueError(
            f"tweak is {len(raw)} bytes; it must be within tweak_min_len..tweak_max_len"
        )


def first_character_bound(d: FpeDefinition) -> int:
    """D: the largest index the first output character can have before the key number."""
    r_i, r_o = len(d.input_character_set), len(d.output_character_set)
    length = d.min_input_length
    return int((r_i**length - 1) // r_o ** (length - 1))


def max_key_number(d: FpeDefinition) -> int:
    """The largest key number this definition can carry in its ciphertexts."""
    bits = d.msb_encoding_bits or 0
    return (len(d.output_character_set) - 1 - first_character_bound(d)) >> bits


def _template(
    description: str, inputs: str, outputs: str, passthrough: str, lengths: tuple[int, int]
) -> dict[str, Any]:
    """A ready-made definition; its passthrough characters are its one passthrough rule."""
    return {
        "description": description,
        "input_character_set": inputs,
        "output_character_set": outputs,
        "passthrough": passthrough,
        "passthrough_rules": [{"type": "passthrough", "value": passthrough, "priority": 1}],
        "min_input_length": lengths[0],
        "max_input_length": lengths[1],
    }


TEMPLATES: dict[str, dict[str, Any]] = {
    "ssn": _template(
        "US Social Security number: 9 digits, dashes pass through", DIGITS, ALNUM, "-", (9, 9)
    ),
    "digits": _template(
        "Any string of 6-64 digits; dashes and spaces pass through", DIGITS, ALNUM, "- ", (6, 64)
    ),
    "alnum": _template(
        "Letters and digits (case kept), 6-128 long; dashes and spaces pass through",
        ALNUM,
        ALNUM + _ALNUM_EXTRA,
        "- ",
        (6, 128),
    ),
    "alnum-upper": _template(
        "Upper-case letters and digits, 6-128 long; dashes and spaces pass through",
        ALNUM_UPPER,
        ALNUM,
        "- ",
        (6, 128),
    ),
}

UNSTRUCTURED_TEMPLATE = "text"  # free text, encrypted with AES-256-GCM data keys


def parse_definition(raw: dict[str, Any]) -> FpeDefinition:
    """Validate a custom definition; raises InvalidInput naming every problem."""
    try:
        return FpeDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}"
            for err in exc.errors()
        )
        message = f"structured dataset definition is not valid: {problems}"
        raise InvalidInput(message, fields={"definition": message}) from exc


def from_template(name: str) -> FpeDefinition:
    if name not in TEMPLATES:
        choices = ", ".join(sorted(TEMPLATES))
        raise InvalidInput(f"unknown template {name!r}; choose one of: {choices}")
    raw = {k: v for k, v in TEMPLATES[name].items() if k != "description"}
    return parse_definition(raw)
