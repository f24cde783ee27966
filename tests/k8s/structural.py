"""Validate a custom resource against its CRD's `openAPIV3Schema` the way the API server does on create.

No API server can run on the build machines, so this re-implements the parts of
apiextensions-apiserver that decide whether a create is accepted with
`fieldValidation=Strict`, in its order:

1. unknown fields (what pruning would drop) are errors, except under
   `x-kubernetes-preserve-unknown-fields`; root `apiVersion`/`kind`/`metadata` are ObjectMeta's;
2. nulls of non-nullable fields are pruned, then `default`s are applied (only inside present objects);
3. value validation: type (+ `x-kubernetes-int-or-string`), `format` int32/int64 ranges, enum,
   minimum/maximum, length, `pattern` (unanchored, like Go's `MatchString`), items, required,
   anyOf/allOf/oneOf/not, `x-kubernetes-list-type` map/set uniqueness;
4. CEL `x-kubernetes-validations` (cel-python); transition rules (`oldSelf`) are skipped, as on create.

Errors read like the API server's: `<path>: <what>`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# ObjectMeta fields a client may send (status-like ones such as uid are accepted and ignored by the server).
OBJECT_META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# resource.Quantity's syntax, as the KubeRay CRDs spell it for every int-or-string quantity.
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
QUANTITY_MAPS = ("requests", "limits", "capacity")


def core_quantity_errors(value: Any, path: str = "") -> list[str]:
    """Quantities in a core object (the published core schemas declare Quantity without a pattern)."""
    errors: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = _join(path, key)
            if key in QUANTITY_MAPS and isinstance(item, dict):
                items = item.items()
            elif key == "sizeLimit":
                items = [("", item)]
            else:
                errors += core_quantity_errors(item, here)
                continue
            for name, quantity in items:
                if not (isinstance(quantity, int) or (isinstance(quantity, str) and QUANTITY.match(quantity))):
                    errors.append(f"{_join(here, name) if name else here}: Invalid value: {quantity!r}: not a quantity")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            errors += core_quantity_errors(item, _join(path, i))
    return errors


@dataclass(frozen=True)
class CrdSchema:
    group: str
    kind: str
    version: str
    schema: dict[str, Any]


def load_crds(directory: Path) -> dict[tuple[str, str], CrdSchema]:
    """(apiVersion, kind) -> schema, for every served version of every CRD file in `directory`."""
    out: dict[tuple[str, str], CrdSchema] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served"):
                    schema = version["schema"]["openAPIV3Schema"]
                    out[(f"{group}/{version['name']}", kind)] = CrdSchema(group, kind, version["name"], schema)
    return out


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


# ---------------------------------------------------------------- 1. unknown fields


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "", errors: list[str] | None = None) -> list[str]:
    errors = [] if errors is None else errors
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        for key, item in value.items():
            if props is not None and key in props:
                unknown_fields(item, props[key], _join(path, key), errors)
            elif isinstance(additional, dict):
                unknown_fields(item, additional, _join(path, key), errors)
            elif additional is True or preserve or (embedded and key in ("apiVersion", "kind", "metadata")):
                continue
            else:
                errors.append(f'{_join(path, key)}: unknown field "{_join(path, key)}"')
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            unknown_fields(item, schema["items"], _join(path, i), errors)
    return errors


# ---------------------------------------------------------------- 2. null pruning + defaults


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Defaults go into objects that exist; nulls of non-nullable fields are dropped first."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in list(value):
            sub = props.get(key) or (
                schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
            )
            if value[key] is None and not (sub or {}).get("nullable", False):
                del value[key]
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = props.get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                apply_defaults(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


# ---------------------------------------------------------------- 3 + 4. values and CEL


def _type_ok(value: Any, type_name: str) -> bool:
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }.get(type_name, True)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@cache
def _cel_program(rule: str) -> Any:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def _cel(value: Any, rules: list[dict[str, Any]], path: str, errors: list[str]) -> None:
    import celpy

    for rule in rules:
        if "oldSelf" in rule["rule"]:
            continue  # a transition rule: evaluated on update only
        result = _cel_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            errors.append(f"{path}: Invalid value: {rule.get('message') or 'failed rule: ' + rule['rule']}")


def check_values(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    if value is None:
        if not schema.get("nullable"):
            errors.append(f"{path}: Invalid value: null: must not be null")
        return
    int_or_string = schema.get("x-kubernetes-int-or-string", False)
    type_name = schema.get("type")
    if int_or_string and not (_type_ok(value, "integer") or isinstance(value, str)):
        errors.append(f"{path}: Invalid value: {value!r}: must be an integer or a string")
        return
    if type_name and not _type_ok(value, type_name):
        errors.append(f"{path}: Invalid value: {value!r}: must be of type {type_name}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: Unsupported value: {value!r}: supported values: {schema['enum']}")
    if _type_ok(value, "number"):
        fmt = schema.get("format")
        if fmt in INT_RANGES and _type_ok(value, "integer"):
            lo, hi = INT_RANGES[fmt]
            if not lo <= value <= hi:
                errors.append(f"{path}: Invalid value: {value}: out of range for {fmt}")
        if "minimum" in schema and (
            value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"])
        ):
            errors.append(f"{path}: Invalid value: {value}: should be greater than or equal to {schema['minimum']}")
        if "maximum" in schema and (
            value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"])
        ):
            errors.append(f"{path}: Invalid value: {value}: should be less than or equal to {schema['maximum']}")
    if isinstance(value, str):
        if "pattern" in schema and not _regex(schema["pattern"]).search(value):
            errors.append(f"{path}: Invalid value: {value!r}: should match '{schema['pattern']}'")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: Too long: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: Invalid value: {value!r}: should be at least {schema['minLength']} chars long")
    if isinstance(value, list):
        _check_list(value, schema, path, errors)
    if isinstance(value, dict):
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(f"{_join(path, key)}: Required value")
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                check_values(item, props[key], _join(path, key), errors)
            elif isinstance(additional, dict):
                check_values(item, additional, _join(path, key), errors)
        for bound, cmp in (("maxProperties", int.__gt__), ("minProperties", int.__lt__)):
            if bound in schema and cmp(len(value), schema[bound]):
                errors.append(f"{path}: Invalid value: {len(value)} properties violates {bound} {schema[bound]}")
    _check_combinators(value, schema, path, errors)
    if schema.get("x-kubernetes-validations"):
        _cel(value, schema["x-kubernetes-validations"], path, errors)


def _check_list(value: list[Any], schema: dict[str, Any], path: str, errors: list[str]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: Invalid value: {len(value)} items: should have at least {schema['minItems']} items")
    if isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            check_values(item, schema["items"], _join(path, i), errors)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: set[tuple[Any, ...]] = set()
        for i, item in enumerate(value):
            key = tuple(repr(item.get(k)) for k in keys) if isinstance(item, dict) else (repr(item),)
            if key in seen:
                errors.append(f"{_join(path, i)}: Duplicate value: {dict(zip(keys, key, strict=True))}")
            seen.add(key)
    elif list_type == "set" or schema.get("uniqueItems"):
        reprs = [repr(item) for item in value]
        for i, rep in enumerate(reprs):
            if rep in reprs[:i]:
                errors.append(f"{_join(path, i)}: Duplicate value: {rep}")


def _check_combinators(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    def failures(sub: dict[str, Any]) -> list[str]:
        found: list[str] = []
        check_values(value, sub, path, found)
        return found

    for sub in schema.get("allOf") or []:
        errors.extend(failures(sub))
    if schema.get("anyOf") and all(failures(sub) for sub in schema["anyOf"]):
        errors.append(f"{path}: Invalid value: {value!r}: must validate against at least one schema of anyOf")
    if schema.get("oneOf") and sum(not failures(sub) for sub in schema["oneOf"]) != 1:
        errors.append(f"{path}: Invalid value: {value!r}: must validate against exactly one schema of oneOf")
    if "not" in schema and not failures(schema["not"]):
        errors.append(f"{path}: Invalid value: {value!r}: must not validate the schema (not)")


def check_metadata(meta: Any, errors: list[str]) -> None:
    if not isinstance(meta, dict):
        errors.append("metadata: Required value")
        return
    for key in meta:
        if key not in OBJECT_META_FIELDS:
            errors.append(f'metadata.{key}: unknown field "metadata.{key}"')
    name = meta.get("name")
    if not isinstance(name, str) or not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        errors.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain is required")
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, label = str(key).rpartition("/")
        if not LABEL_NAME.match(label) or len(label) > 63 or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            errors.append(f"metadata.labels: Invalid value: {key!r}: not a qualified name")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errors.append(f"metadata.labels: Invalid value: {value!r}: not a valid label value")


def validate(doc: dict[str, Any], crds: dict[tuple[str, str], CrdSchema]) -> tuple[dict[str, Any], list[str]]:
    """(the object as it would be stored, errors); no errors means the API server would accept it."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in crds:
        return doc, [f"no CRD serves {key[0]} {key[1]}"]
    schema = crds[key].schema
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    errors = unknown_fields(body, schema)
    check_metadata(doc.get("metadata"), errors)
    stored = apply_defaults(copy.deepcopy(body), schema)
    for field, value in stored.items():
        sub = (schema.get("properties") or {}).get(field)
        if sub is not None:
            check_values(value, sub, field, errors)
    for field in schema.get("required") or []:
        if field not in doc and field not in stored:
            errors.append(f"{field}: Required value")
    return {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "metadata": doc.get("metadata"), **stored}, errors
