#!/usr/bin/env python3
"""Checks which way the crate's files import each other.

Every `crate::…` and `super::…` path in `src/` counts as an import of the
file that defines the module it names: `use` lines (with their braces
expanded) and paths written inline in code alike. Comments and string
literals are ignored. A path that stops at the crate root (`crate::Engine`)
is an import of `lib.rs`, so code inside the crate names the module an item
lives in, not the root's re-export.

Two rules, and the script exits 1 if either is broken:

1. No import circle among the files of `src/` (strongly connected
   components of the file graph, each reported with one cycle through it).
2. The files under `src/hot/` (everything a `record!` or handle call can
   reach) import nothing outside `src/hot/` but `src/sync.rs` and
   `src/error.rs`.

`--levels` also prints each file's import level (0: imports nothing).
`--self-test` runs the checker on small planted trees, one clean and one
each with a cycle (through a `use` group, and through an inline path) and
a hot-side import of the cold side, and fails unless it flags exactly
those.

Usage: python3 .ci/imports.py [--levels] [SRC_DIR]
       python3 .ci/imports.py --self-test
"""

import os
import re
import sys
import tempfile

HOT_DIR = "hot"
HOT_MAY_IMPORT = {"sync.rs", "error.rs"}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif re.match(r'r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = len(re.match(r"r(#*)\"", text[i:]).group(1))
            end = text.find('"' + "#" * hashes, i + 2 + hashes)
            end = n if end < 0 else end + 1 + hashes
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^'\\])'", text[i:])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    # Drop `as` renames: `a::b as c`.
    tree = re.sub(r"as" + IDENT, "", tree)

    def expand(s):
        brace = s.find("{")
        if brace < 0:
            return [s]
        prefix = s[:brace]
        depth, end = 0, brace
        for k in range(brace, len(s)):
            if s[k] == "{":
                depth += 1
            elif s[k] == "}":
                depth -= 1
                if depth == 0:
                    end = k
                    break
        inner, rest = s[brace + 1:end], s[end + 1:]
        parts, depth, start = [], 0, 0
        for k, ch in enumerate(inner):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(inner[start:k])
                start = k + 1
        parts.append(inner[start:])
        result = []
        for part in parts:
            if not part:
                continue
            for sub in expand(part):
                result.extend(expand(prefix + sub + rest) if "{" in rest else [prefix + sub + rest])
        return result

    return [p.rstrip(":") for p in expand(tree) if p]


def module_files(src):
    """Module path (tuple) -> file path relative to src, and the reverse."""
    modules = {}
    for root, _dirs, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), src)
            parts = rel[:-3].split(os.sep)
            if parts == ["lib"] or parts == ["main"]:
                path = ()
            elif parts[-1] == "mod":
                path = tuple(parts[:-1])
            else:
                path = tuple(parts)
            modules[path] = rel
    return modules


def inline_mod_spans(code):
    """(start, end) character spans of inline `mod name { … }` blocks."""
    spans = []
    for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{", code):
        depth, k = 0, m.end() - 1
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        spans.append((m.start(), k))
    return spans


def resolve(path_parts, modules):
    """The file of the longest module prefix of `path_parts`."""
    for length in range(len(path_parts), -1, -1):
        if tuple(path_parts[:length]) in modules:
            return modules[tuple(path_parts[:length])]
    return modules.get(())


def imports_of(rel, code, module_path, modules):
    """Files imported by one file."""
    spans = inline_mod_spans(code)
    found = []  # (position, ['crate'|'super'..., segments...])
    for m in re.finditer(r"\buse\s+([^;]*);", code):
        for path in expand_use_tree(m.group(1)):
            found.append((m.start(), path.lstrip(":")))
    use_spans = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]*;", code)]
    for m in re.finditer(r"(?<![A-Za-z0-9_$:])((?:crate|super)(?:::(?:super|" + IDENT + r"))+)", code):
        if any(a <= m.start() < b for a, b in use_spans):
            continue
        found.append((m.start(), m.group(1)))
    targets = set()
    for pos, path in found:
        segments = path.split("::")
        if segments[0] == "crate":
            absolute = segments[1:]
        elif segments[0] == "self" or (module_path + (segments[0],)) in modules:
            # A `use` path relative to this module (`use ring::Ring;` in
            # lib.rs, `use self::ring::Ring;`).
            absolute = list(module_path) + [s for s in segments if s != "self"]
        elif segments[0] == "super":
            depth = sum(1 for a, b in spans if a <= pos <= b)
            base = list(module_path)
            while segments and segments[0] == "super":
                segments = segments[1:]
                if depth:
                    depth -= 1
                elif base:
                    base.pop()
            absolute = base + segments
        else:
            continue
        target = resolve([s for s in absolute if s not in ("self", "*")], modules)
        if target and target != rel:
            targets.add(target)
    return targets


def graph(src):
    modules = module_files(src)
    edges = {}
    for path, rel in modules.items():
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            code = strip_comments_and_strings(f.read())
        edges[rel] = imports_of(rel, code, path, modules)
    return edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(edges[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


def one_cycle(edges, comp):
    """A concrete cycle inside a component, for the message."""
    members = set(comp)
    start = comp[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in edges[path[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            return path + [nxt[0]] if nxt else path
        path.append(fresh[0])
        seen.add(fresh[0])


def levels(edges):
    level = {}

    def of(v, trail=()):
        if v in level:
            return level[v]
        if v in trail:
            return 0
        deps = [of(w, trail + (v,)) for w in edges[v]]
        level[v] = 1 + max(deps) if deps else 0
        return level[v]

    for v in edges:
        of(v)
    return level


def check(src, show_levels=False, out=sys.stdout):
    edges = graph(src)
    problems = []
    for comp in cycles(edges):
        problems.append("import circle: " + " -> ".join(one_cycle(edges, comp)))
    for rel, targets in sorted(edges.items()):
        if rel.split(os.sep)[0] != HOT_DIR:
            continue
        for target in sorted(targets):
            if target.split(os.sep)[0] != HOT_DIR and target not in HOT_MAY_IMPORT:
                problems.append(f"hot-side file {rel} imports {target}")
    if show_levels:
        lv = levels(edges)
        for rel in sorted(edges, key=lambda r: (lv[r], r)):
            print(f"{lv[rel]:3} {rel}", file=out)
        print(f"{max(lv.values()) + 1 if lv else 0} import levels", file=out)
    for p in problems:
        print(p, file=out)
    if not problems:
        print(f"imports: {len(edges)} files, no import circle, {HOT_DIR}/ imports only itself, sync and error", file=out)
    return problems


def self_test():
    import io

    def tree(files):
        root = tempfile.mkdtemp(prefix="imports-selftest-")
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return root

    clean = {
        "lib.rs": "mod hot; mod drain; mod report; mod sync; pub use drain::Flusher;\n",
        "sync.rs": "pub(crate) use std::sync::atomic::AtomicU64;\n",
        "hot/mod.rs": "pub(crate) mod ring;\npub(crate) mod record;\n",
        "hot/ring.rs": "use crate::sync::AtomicU64; // crate::drain::x in a comment\n"
                       "const S: &str = \"crate::drain::flusher\";\n",
        "hot/record.rs": "use super::{ring::Ring, super::sync};\n#[cfg(test)]\nmod tests { use super::*; }\n",
        "drain/mod.rs": "pub(crate) mod flusher;\npub(crate) use flusher::Flusher;\n",
        "drain/flusher.rs": "use crate::hot::{ring, record::{self, x}};\npub struct Flusher;\n",
    }
    cases = [
        ("clean tree", clean, []),
        ("cycle through a use group", dict(clean, **{
            "hot/ring.rs": "use crate::{sync::AtomicU64, hot::record::Thing};\n"}), ["import circle"]),
        ("cycle through an inline path", dict(clean, **{
            "drain/mod.rs": "pub(crate) mod flusher;\nfn f() { crate::drain::flusher::go(); }\n",
            "drain/flusher.rs": "fn g() { let _ = super::helper(); }\n"}), ["import circle"]),
        ("hot imports the cold side", dict(clean, **{
            "report/mod.rs": "pub struct Stats;\n",
            "hot/record.rs": "fn f() { crate::report::Stats; }\n"}), ["hot-side file"]),
        ("root re-export used inside the crate", dict(clean, **{
            "drain/flusher.rs": "use crate::Flusher;\n"}), ["import circle"]),
    ]
    failed = False
    for name, files, expect in cases:
        root = tree(files)
        sink = io.StringIO()
        problems = check(root, out=sink)
        kinds = sorted({p.split(":")[0] if p.startswith("import circle") else "hot-side file" for p in problems})
        ok = kinds == sorted(expect)
        print(f"self-test {'ok  ' if ok else 'FAIL'} {name}: {problems or 'no problem'}")
        failed |= not ok
    if failed:
        print("imports.py self-test failed", file=sys.stderr)
        return 1
    print("imports.py self-test passed")
    return 0


def main(argv):
    if "--self-test" in argv:
        return self_test()
    show = "--levels" in argv
    args = [a for a in argv if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    return 1 if check(src, show_levels=show) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
