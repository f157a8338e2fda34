#!/usr/bin/env python3
"""msl_sim source rewrite and launcher generator.

  kernel mode:   msl_sim_gen.py kernel --input f.metal --output f.metal.cpp --uid ID
  registry mode: msl_sim_gen.py registry --output registry.cpp --target T --uids ID...

Kernel mode turns one .metal file into a C++ translation unit:
  * the source goes into its own namespace, line-preserving, behind `#line 1 "f.metal"`;
  * in-body `threadgroup T x[N];` becomes runtime-allocated threadgroup memory;
  * non-standard attributes ([[buffer(0)]], [[host_name("x")]], ...) are blanked out;
  * every kernel (and every `[[host_name]]` explicit template instantiation) gets a launcher
    that binds buffers, threadgroup arguments and built-ins, plus a KernelInfo registration.
Errors name the .metal file and line and exit with status 1.
"""

import argparse
import os
import re
import sys

STD_ATTRS = {
    "maybe_unused",
    "likely",
    "unlikely",
    "fallthrough",
    "nodiscard",
    "noreturn",
    "deprecated",
    "gnu::always_inline",
    "gnu::noinline",
    "clang::always_inline",
}

# built-in attribute -> C++ expression building the parameter (P = parameter type)
VEC_BUILTINS = {
    "thread_position_in_grid": "c.thread_position_in_grid",
    "thread_position_in_threadgroup": "c.thread_position_in_threadgroup",
    "threadgroup_position_in_grid": "c.threadgroup_position_in_grid",
    "threads_per_threadgroup": "c.threads_per_threadgroup",
    "dispatch_threads_per_threadgroup": "c.threads_per_threadgroup",
    "threadgroups_per_grid": "c.threadgroups_per_grid",
    "threads_per_grid": "c.threads_per_grid",
    "grid_size": "c.threads_per_grid",
}
SCALAR_BUILTINS = {
    "thread_index_in_threadgroup": "c.thread_index_in_threadgroup",
    "thread_index_in_simdgroup": "c.thread_index_in_simdgroup",
    "simdgroup_index_in_threadgroup": "c.simdgroup_index_in_threadgroup",
    "simdgroups_per_threadgroup": "c.simdgroups_per_threadgroup",
    "dispatch_simdgroups_per_threadgroup": "c.simdgroups_per_threadgroup",
    "threads_per_simdgroup": "32u",
    "thread_execution_width": "32u",
    "thread_index_in_quadgroup": "(c.thread_index_in_simdgroup % 4u)",
    "quadgroup_index_in_threadgroup": "(c.thread_index_in_threadgroup / 4u)",
    "quadgroups_per_threadgroup": "((c.threads_per_threadgroup[0] * c.threads_per_threadgroup[1]"
    " * c.threads_per_threadgroup[2] + 3u) / 4u)",
}


class GenError(Exception):
    pass


def mask_source(text):
    """Replace comments and string/char literals with spaces (newlines kept) for parsing."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def matching(masked, pos, open_ch, close_ch):
    depth = 0
    for i in range(pos, len(masked)):
        if masked[i] == open_ch:
            depth += 1
        elif masked[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    raise GenError(f"unbalanced '{open_ch}' at offset {pos}")


def find_attributes(masked, text):
    """[(start, end, content)] of every [[...]] attribute (content from the unmasked text)."""
    attrs = []
    for m in re.finditer(r"\[\[", masked):
        end = masked.find("]]", m.end())
        if end < 0:
            continue
        attrs.append((m.start(), end + 2, text[m.end() : end].strip()))
    return attrs


def split_params(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def param_bindings(params_text, path, line):
    """[(kind, value)] per parameter: ('buffer', i) / ('threadgroup', i) / ('builtin', name)."""
    out = []
    for p in split_params(params_text):
        m = re.search(r"\[\[\s*([A-Za-z_]\w*)\s*(?:\(\s*([^)]*?)\s*\))?\s*\]\]", p)
        if not m:
            raise GenError(
                f"{path}:{line}: kernel parameter '{' '.join(p.split())}' has no "
                "attribute; expected [[buffer(i)]], [[threadgroup(i)]] or a built-in"
            )
        name, arg = m.group(1), m.group(2)
        if name in ("buffer", "threadgroup"):
            if arg is None or not arg.isdigit():
                raise GenError(
                    f"{path}:{line}: [[{name}(...)]] needs a literal index, found " f"'{arg}'"
                )
            out.append((name, int(arg)))
        elif name in VEC_BUILTINS or name in SCALAR_BUILTINS:
            out.append(("builtin", name))
        else:
            raise GenError(
                f"{path}:{line}: unsupported kernel parameter attribute [[{name}]] "
                "(textures, stage_in and function constants are not simulated)"
            )
    return out


def host_name_in(attrs, start, end):
    for a0, a1, content in attrs:
        if a0 >= start and a1 <= end:
            m = re.match(r'host_name\s*\(\s*"([^"]*)"\s*\)', content)
            if m:
                return m.group(1)
    return None


def skip_back_ws_attrs(masked, pos, attrs):
    """Position just after the previous token before pos, skipping whitespace and attributes."""
    while True:
        while pos > 0 and masked[pos - 1].isspace():
            pos -= 1
        hit = [a for a in attrs if a[1] == pos]
        if not hit:
            return pos
        pos = hit[0][0]


def find_kernels(text, masked, attrs, path):
    """Return (templates {name: (params, line)}, kernels [(host, call_expr, params, line)])."""
    templates, plain, insts = {}, [], []
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\bkernel\b", masked)]
    for a0, a1, content in attrs:
        if content == "kernel":
            tokens.append((a0, a1))
    for k0, k1 in sorted(tokens):
        line = line_of(text, k0)
        m = re.compile(r"\s*((?:[A-Za-z_][\w:]*\s+)*?)([A-Za-z_]\w*)\s*([(<;])").match(masked, k1)
        if not m:
            continue
        name, follow = m.group(2), m.group(3)
        before = skip_back_ws_attrs(masked, k0, attrs)
        is_inst = (
            masked[:before].rstrip().endswith("template")
            and re.search(r"\btemplate\s*$", masked[:before]) is not None
        )
        host = host_name_in(attrs, before, k0)
        if is_inst:
            if follow != "<":
                raise GenError(
                    f"{path}:{line}: explicit instantiation of '{name}' needs template " "arguments"
                )
            close = matching(masked, m.end(3) - 1, "<", ">")
            targs = " ".join(text[m.end(3) : close].split())
            if host is None:
                raise GenError(
                    f"{path}:{line}: explicit instantiation of '{name}<{targs}>' has no "
                    '[[host_name("...")]]'
                )
            insts.append((host, name, targs, line))
            continue
        if follow != "(":
            continue
        close = matching(masked, m.end(3) - 1, "(", ")")
        after = masked[close + 1 :].lstrip()
        if not after.startswith("{"):
            continue  # declaration only
        params = param_bindings(masked[m.end(3) : close], path, line)
        is_template = (
            re.search(r">\s*$", masked[:before]) is not None
            and re.search(r"\btemplate\s*<", masked[max(0, before - 400) : before]) is not None
        )
        if is_template:
            templates[name] = (params, line)
        else:
            host = host or name
            plain.append((host, name, params, line))
    kernels = [(h, n, p, l) for h, n, p, l in plain]
    for host, name, targs, line in insts:
        if name not in templates:
            raise GenError(
                f"{path}:{line}: '{host}' instantiates '{name}', which is not a kernel "
                "template defined earlier in this file"
            )
        kernels.append((host, f"{name}<{targs}>", templates[name][0], line))
    return kernels


TG_DECL = re.compile(
    r"^([ \t]*)threadgroup\s+([A-Za-z_][\w:<>, ]*?)\s+([A-Za-z_]\w*)\s*((?:\[[^\]\n]*\]\s*)*);",
    re.M,
)


# `constant T x = ...;` (a compile-time constant in MSL) but not `constant T& x = ...;`, which in a
# function body binds a reference into the constant address space and must stay a reference.
CONST_DECL = re.compile(r"^[ \t]*(constant)\s+(?!const\b|constexpr\b)[^;(){}&]*=[^;{}]*;", re.M)


def rewrite(text, masked, attrs, path):
    """Blank non-standard attributes and rewrite in-body threadgroup declarations."""
    chars = list(text)
    for a0, a1, content in attrs:
        name = re.match(r"[\w:]*", content).group(0)
        if name not in STD_ATTRS:
            for k in range(a0, a1):
                if chars[k] != "\n":
                    chars[k] = " "
    out = "".join(chars)
    # Brace depth at each threadgroup declaration: only in-body ones are rewritten.
    edits = []
    for m in TG_DECL.finditer(masked):
        depth = masked.count("{", 0, m.start()) - masked.count("}", 0, m.start())
        if depth <= 0:
            continue
        indent, typ, name, dims = m.group(1), " ".join(m.group(2).split()), m.group(3), m.group(4)
        dims = "".join(dims.split())
        if "," in typ and "<" not in typ:
            raise GenError(
                f"{path}:{line_of(text, m.start())}: declare one threadgroup variable "
                "per statement"
            )
        if dims:
            new = f"{indent}threadgroup {typ} (&{name}){dims} = MSL_SIM_TG_VAR({typ}{dims});"
        else:
            new = f"{indent}threadgroup {typ}& {name} = MSL_SIM_TG_VAR({typ});"
        edits.append((m.start(), m.end(), new))
    # Namespace-scope `constant T x = ...;` is a compile-time constant in MSL: make it const.
    for m in CONST_DECL.finditer(masked):
        edits.append((m.start(1), m.end(1), "const   "))
    edits.sort()
    for s, e, new in reversed(edits):
        out = out[:s] + new + out[e:]
    return out


def launcher(i, ns, call, params):
    args = []
    for idx, (kind, val) in enumerate(params):
        p = f"::msl_sim::launch::param_t<F, {idx}>"
        if kind == "buffer":
            args.append(f"::msl_sim::launch::buffer<{p}>(c, {val})")
        elif kind == "threadgroup":
            args.append(f"::msl_sim::launch::tg_arg<{p}>(c, {val})")
        elif val in VEC_BUILTINS:
            args.append(f"::msl_sim::launch::builtin<{p}>({VEC_BUILTINS[val]})")
        else:
            args.append(f"::msl_sim::launch::builtin_scalar<{p}>({SCALAR_BUILTINS[val]})")
    joined = ",\n      ".join(args)
    return (
        f"void launch_{i}(const ::msl_sim::ThreadCtx& c) {{\n"
        f"  using F = decltype(&{ns}::{call});\n"
        f"  (void)c;\n"
        f"  {ns}::{call}(\n      {joined});\n}}\n"
    )


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gen_kernel(src_path, out_path, uid):
    with open(src_path, encoding="utf-8") as f:
        text = f.read()
    path = os.path.abspath(src_path)
    masked = mask_source(text)
    attrs = find_attributes(masked, text)
    kernels = find_kernels(text, masked, attrs, path)
    body = rewrite(text, masked, attrs, path)
    ns = f"msl_sim_k_{uid}"
    lines = [
        "// Generated by msl_sim_gen.py from " + path + "; do not edit.",
        '#include "msl_sim/launch.h"',
        "#include <metal_stdlib>",
        f"namespace {ns} {{",
        "using namespace metal;",
        "MSL_SIM_USING_METAL_MATH",
        f"#line 1 {c_string(path)}",
    ]
    out = "\n".join(lines) + "\n" + body
    if not body.endswith("\n"):
        out += "\n"
    tail = [
        f"}}  // namespace {ns}",
        '#include "msl_sim/shim/undef_keywords.h"',
        f"namespace {ns} {{",
    ]
    for i, (host, call, params, line) in enumerate(kernels):
        tail.append(launcher(i, ns, call, params))
    tail.append(f"}}  // namespace {ns}")
    infos = []
    for i, (host, call, params, line) in enumerate(kernels):
        bmask = sum(1 << v for k, v in params if k == "buffer")
        tmask = sum(1 << v for k, v in params if k == "threadgroup")
        infos.append(
            f"    {{{c_string(host)}, &{ns}::launch_{i}, {c_string(path)}, {line}u, "
            f"0x{bmask:x}ull, 0x{tmask:x}u}},"
        )
    tail.append(f"void msl_sim_register_{uid}() {{")
    if infos:
        tail.append("  static const ::msl_sim::KernelInfo infos[] = {")
        tail += infos
        tail.append("  };")
        tail.append("  for (const auto& info : infos) ::msl_sim::register_kernel(&info);")
    tail.append("}")
    out += f"#line {out.count(chr(10)) + 2} {c_string(os.path.abspath(out_path))}\n"
    out += "\n".join(tail) + "\n"
    write_if_changed(out_path, out)


def gen_registry(out_path, target, uids):
    lines = ["// Generated by msl_sim_gen.py; do not edit.", '#include "msl_sim/sim.h"']
    lines += [f"void msl_sim_register_{u}();" for u in uids]
    lines.append(f'extern "C" int msl_sim_anchor_{target};')
    calls = " ".join(f"msl_sim_register_{u}();" for u in uids)
    lines.append(f'extern "C" int msl_sim_anchor_{target} = [] {{ {calls} return 1; }}();')
    write_if_changed(out_path, "\n".join(lines) + "\n")


def write_if_changed(path, content):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["kernel", "registry"])
    ap.add_argument("--input")
    ap.add_argument("--output", required=True)
    ap.add_argument("--uid")
    ap.add_argument("--target")
    ap.add_argument("--uids", nargs="*", default=[])
    a = ap.parse_args(argv)
    try:
        if a.mode == "kernel":
            gen_kernel(a.input, a.output, a.uid)
        else:
            gen_registry(a.output, a.target, a.uids)
    except (GenError, OSError) as e:
        print(f"[msl_sim_gen] {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
