#!/usr/bin/env python3
"""Extracts the C++ code blocks of a Markdown document into one translation unit.

    extract_code_blocks.py DOC.md OUT.cc [--prelude PRELUDE.hpp]

Every ```cpp block of DOC.md is compiled, in document order, unless the line
just before its fence is a marker (an HTML comment, invisible once rendered):

    (no marker)                       declarations at namespace scope
    <!-- doc-test: function(PARAMS) -->   statements: the body of a function
                                      taking PARAMS (what the prose says the
                                      names are), returning int
    <!-- doc-test: coroutine(PARAMS) -->  the same, as an asio::awaitable<void>
    <!-- doc-test: skip REASON -->        not compiled (say why)

`#line` directives make compiler errors point at DOC.md. Names a document uses
without defining come from an optional prelude (tests/docs/preludes/DOC.hpp),
included first. A malformed marker is an error, never a silent skip.
"""
import argparse
import pathlib
import re
import sys

MARKER = re.compile(r"^<!--\s*doc-test:\s*(?P<kind>function|coroutine|skip)(?P<rest>.*?)\s*-->\s*$")
FENCE_OPEN = re.compile(r"^```(?P<lang>[A-Za-z0-9+_-]*)\s*$")


class DocError(Exception):
    pass


def blocks(lines, doc):
    """Yields (kind, params, first_line_number, code) for each cpp block."""
    i = 0
    while i < len(lines):
        opened = FENCE_OPEN.match(lines[i])
        if not opened:
            i += 1
            continue
        lang = opened.group("lang")
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise DocError(f"{doc}:{i + 1}: code block never closed")
        if lang in ("cpp", "c++"):
            kind, params = "declarations", ""
            previous = lines[i - 1] if i > 0 else ""
            if "doc-test" in previous:
                marker = MARKER.match(previous)
                if not marker:
                    raise DocError(f"{doc}:{i}: malformed doc-test marker: {previous.strip()}")
                kind, rest = marker.group("kind"), marker.group("rest").strip()
                if kind == "skip":
                    if not rest:
                        raise DocError(f"{doc}:{i}: 'doc-test: skip' needs a reason")
                elif rest:
                    if not (rest.startswith("(") and rest.endswith(")")):
                        raise DocError(f"{doc}:{i}: expected {kind}(PARAMS), got {rest}")
                    params = rest[1:-1]
            yield kind, params, start + 1, "".join(lines[start:end])
        i = end + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("doc")
    parser.add_argument("out")
    parser.add_argument("--prelude")
    parser.add_argument("--name", help="the document's path as errors should show it")
    args = parser.parse_args()
    doc = pathlib.Path(args.doc)
    shown = args.name or str(doc)
    lines = doc.read_text(encoding="utf-8").splitlines(keepends=True)
    out = [f"// Generated from {shown} by tests/docs/extract_code_blocks.py: edit the document.\n",
           '#include "docs/doc_test_common.hpp"\n']
    if args.prelude:
        out.append(f'#include "{pathlib.Path(args.prelude).resolve()}"\n')
    compiled = skipped = 0
    try:
        for kind, params, first, code in blocks(lines, shown):
            if kind == "skip":
                skipped += 1
                continue
            compiled += 1
            line = f'#line {first} "{shown}"\n'
            if kind == "declarations":
                out += ["\n", line, code]
            elif kind == "function":
                out += [f"\n[[maybe_unused]] static int doc_block_{first}({params}) {{\n", line, code,
                        "  return 0;\n}\n"]
            else:
                out += [f"\n[[maybe_unused]] static asio::awaitable<void> doc_block_{first}({params}) {{\n", line,
                        code, "  co_return;\n}\n"]
    except DocError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out.append(f"\n// {compiled} blocks compiled, {skipped} skipped.\n")
    target = pathlib.Path(args.out)
    text = "".join(out)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
