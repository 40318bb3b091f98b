#!/usr/bin/env python3
"""Lists the crate's public API from rustdoc's JSON output, one line per
item: the path a user writes, its kind, and its signature with type
references reduced to their names (so moving an item between private
modules changes nothing, while a changed field, argument, bound or
re-export does).

Make the JSON, then list or compare:

    RUSTC_BOOTSTRAP=1 cargo rustdoc --lib --all-features -- \\
        -Z unstable-options --output-format json
    python3 .ci/public_api.py target/doc/hotmetrics.json > api.txt
    python3 .ci/public_api.py OLD.json NEW.json     # prints the difference, exit 1 if any

(`RUSTC_BOOTSTRAP` only unlocks rustdoc's JSON output on the stable
toolchain; nothing is built with unstable features.)
"""

import json
import sys

DROP_KEYS = {"id", "span", "crate_id", "links", "docs", "attrs", "deprecation"}


def api(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    index = doc["index"]
    out = {}

    def name_of(item_id):
        item = index.get(str(item_id))
        if item and item.get("name"):
            return item["name"]
        entry = doc["paths"].get(str(item_id))
        return entry["path"][-1] if entry else "?"

    def field_type(item_id):
        item = index.get(str(item_id)) if item_id is not None else None
        if item is None:
            return None
        return normal(item["inner"].get("struct_field"))

    def normal(value):
        if isinstance(value, dict):
            result = {}
            for key, inner in value.items():
                if key in DROP_KEYS:
                    continue
                if key in ("items", "impls", "implementations", "variants"):
                    # Children and impls are listed on their own lines.
                    continue
                if key in ("tuple", "fields") and isinstance(inner, list):
                    # Field ids: the fields' types instead.
                    result[key] = [field_type(i) for i in inner]
                elif key == "path" and isinstance(inner, str):
                    result[key] = inner.split("::")[-1]
                else:
                    result[key] = normal(inner)
            if "id" in value and "path" in value:
                result["path"] = value["path"].split("::")[-1] if isinstance(value["path"], str) else name_of(value["id"])
            return result
        if isinstance(value, list):
            return [normal(inner) for inner in value]
        return value

    def visit(item_id, prefix, seen):
        item = index.get(str(item_id))
        if item is None or item_id in seen:
            return
        seen = seen | {item_id}
        inner = item["inner"]
        kind = next(iter(inner))
        if kind == "use":
            use = inner["use"]
            target = use.get("id")
            name = use["name"]
            if target is None:
                out[f"{prefix}{name}"] = f"use (external) {use['source']}"
                return
            target_item = index.get(str(target))
            if target_item is None:
                out[f"{prefix}{name}"] = f"use (external) {use['source']}"
                return
            if use.get("is_glob"):
                for child in target_item["inner"].get("module", {}).get("items", []):
                    visit(child, prefix, seen)
                return
            visit_named(target, f"{prefix}{name}", seen)
            return
        visit_named(item_id, f"{prefix}{item['name']}", seen)

    def visit_named(item_id, path, seen):
        item = index[str(item_id)]
        if item.get("visibility") not in ("public", "default") and not path.count("::") == 0:
            return
        inner = item["inner"]
        kind = next(iter(inner))
        out[path] = f"{kind} {json.dumps(normal(inner[kind]), sort_keys=True)}"
        if kind == "module":
            for child in inner["module"]["items"]:
                visit(child, path + "::", seen)
        elif kind in ("struct", "enum", "union", "trait"):
            body = inner[kind]
            children = []
            if kind == "enum":
                children += body.get("variants", [])
            if kind == "struct":
                fields = body.get("kind", {})
                if isinstance(fields, dict):
                    plain = fields.get("plain", {})
                    children += plain.get("fields", []) if isinstance(plain, dict) else []
                    tuple_fields = fields.get("tuple")
                    if isinstance(tuple_fields, list):
                        children += [f for f in tuple_fields if f is not None]
            if kind == "trait":
                children += body.get("items", [])
            for impl_id in body.get("impls", []):
                impl = index.get(str(impl_id))
                if impl is None:
                    continue
                impl_body = impl["inner"]["impl"]
                if impl_body.get("trait") is None:
                    children += impl_body.get("items", [])
                elif not impl_body.get("is_synthetic") and not impl_body.get("blanket_impl"):
                    trait = impl_body["trait"]
                    out[f"{path} impl {trait.get('path', '?').split('::')[-1]}"] = "impl " + json.dumps(
                        normal(impl_body.get("trait")), sort_keys=True)
            for child in children:
                child_item = index.get(str(child))
                if child_item is None:
                    continue
                if kind == "struct" and child_item.get("visibility") != "public":
                    continue
                if kind == "struct" and "impls" not in body:
                    pass
                child_kind = next(iter(child_item["inner"]))
                if child_kind == "function" and child_item.get("visibility") not in ("public", "default"):
                    continue
                visit_named(child, f"{path}::{child_item.get('name')}", seen)

    visit(doc["root"], "", frozenset())
    return out


def main(argv):
    if len(argv) == 1:
        for path, signature in sorted(api(argv[0]).items()):
            print(f"{path}\t{signature}")
        return 0
    if len(argv) == 2:
        old, new = api(argv[0]), api(argv[1])
        changed = 0
        for path in sorted(set(old) | set(new)):
            if old.get(path) != new.get(path):
                changed += 1
                print(f"- {path}\t{old.get(path)}" if path in old else "", end="\n" if path in old else "")
                print(f"+ {path}\t{new.get(path)}" if path in new else "", end="\n" if path in new else "")
        print(f"{len(old)} items before, {len(new)} after, {changed} changed")
        return 1 if changed else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
