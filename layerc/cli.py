"""The ``layerc`` command line.

    layerc show  FILE:NAME [--sizes C=256 ...]        forward, derived backward, saved tensors, C
    layerc show  FILE:NAME --graph out.svg             the stages as a picture (kernels boxed)
    layerc check FILE:NAME [--sizes N=3 C=5]           gradient check (exit 1 on failure)
    layerc build FILE:NAME [--sizes ...] [-o generated/]   an importable ahead-of-time package
    layerc build --all [--manifest generated/manifest.txt] [--sources-only]
    layerc bench [...]                                 the benchmarks (benchmarks/run.py)
    layerc cache dir|ls|clear|verify                   the JIT build cache

``FILE:NAME`` names a Python file and, in it, a layer spec (``@layer``) or a
factory returning one (or returning a built module); ``--arg k=v`` passes
keyword arguments to a factory. ``NAME`` may be left out when the file
declares exactly one spec. ``--sizes`` binds sizes and attributes
(``C=256 stride=2``).

Exit codes: 0 success, 1 failure (a gradient check failed, a spec or a build
failed), 2 usage errors (bad arguments, a missing file or name). Errors go to
stderr. Progress goes through the ``"layerc"`` logger (to stderr here; silent
in library use); ``-q`` hides it, ``-v`` or ``LAYERC_VERBOSE=1`` also shows
every compiler command.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import pathlib
import re
import shlex
import sys
import time

log = logging.getLogger("layerc")

SHOW_PARTS = ("forward", "backward", "fused", "saved", "c")
DEFAULT_MANIFEST = pathlib.Path("generated") / "manifest.txt"
REPO = pathlib.Path(__file__).resolve().parents[1]


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


class Failure(Exception):
    """The command ran and failed: exit code 1."""


# ---------------------------------------------------------------- loading specs


def parse_value(text: str):
    """``3`` → 3, ``0.5`` → 0.5, ``True`` → True, anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_assignments(items, what: str) -> dict:
    """``["N=64,C=8", "eps=0.1"]`` -> ``{"N": 64, "C": 8, "eps": 0.1}`` (a comma
    starts a new assignment only before ``NAME=``: ``kernel=(3,3)`` stays whole)."""
    result = {}
    for item in (part for given in items or () for part in re.split(r",(?=\s*[A-Za-z_]\w*=)", given)):
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"{what} takes NAME=VALUE, got {item!r}")
        result[name.strip()] = parse_value(value.strip())
    return result


def load_file(path: str):
    """Import a Python file by path (its folder goes first on sys.path while it runs)."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    file = file.resolve()
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
    module_name = f"_layerc_user_{file.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None:
        raise UsageError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module   # inspect needs it to find the specs' source
    sys.path.insert(0, str(file.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        try:
            sys.path.remove(str(file.parent))
        except ValueError:
            pass
    return module


def resolve_target(target: str, factory_args: dict | None = None):
    """``FILE:NAME`` → ``(LayerSpec, default bindings)``."""
    from .compiler.spec import LayerSpec
    path, sep, name = target.rpartition(":")
    if not sep or not path.endswith(".py"):
        path, name = target, ""
    if not path.endswith(".py"):
        raise UsageError(f"expected FILE.py:NAME, got {target!r}")
    module = load_file(path)
    specs = {k: v for k, v in vars(module).items() if isinstance(v, LayerSpec)}
    if not name:
        if len(specs) != 1:
            raise UsageError(f"{path} declares {len(specs)} layer specs ({', '.join(specs) or 'none'}); "
                             f"name one: {path}:NAME")
        name = next(iter(specs))
    if not hasattr(module, name):
        raise UsageError(f"{path} has no {name!r} (layer specs there: {', '.join(specs) or 'none'})")
    obj = getattr(module, name)
    if isinstance(obj, LayerSpec):
        if factory_args:
            raise UsageError(f"{name} is a layer spec, not a factory: --arg does not apply (use --sizes)")
        return obj, {}
    if not callable(obj):
        raise UsageError(f"{path}:{name} is neither a layer spec nor a factory returning one")
    made = obj(**(factory_args or {}))
    if isinstance(made, LayerSpec):
        return made, {}
    compiled = getattr(made, "compiled", None)
    if compiled is not None and isinstance(getattr(compiled, "spec", None), LayerSpec):
        return compiled.spec, {**compiled.sizes, **compiled.attrs}
    spec = getattr(made, "spec", None)
    if isinstance(spec, LayerSpec):
        bindings = getattr(made, "bindings", None)
        return spec, dict(bindings) if isinstance(bindings, dict) else {}
    raise UsageError(f"{path}:{name}(...) returned {type(made).__name__}, not a layer spec or a layerc module")


def target_bindings(args) -> tuple:
    spec, defaults = resolve_target(args.target, parse_assignments(args.arg, "--arg"))
    given = parse_assignments(args.sizes, "--sizes")
    unknown = sorted(set(given) - set(spec.sizes) - set(spec.attrs))
    if unknown:
        raise UsageError(f"--sizes: {spec.name} has no size or attribute {', '.join(unknown)} "
                         f"(sizes: {', '.join(spec.sizes) or 'none'}; attributes: {', '.join(spec.attrs) or 'none'})")
    return spec, {**defaults, **given}


# distinct small sizes first (a transposed read then shows as a wrong shape),
# then equal ones for specs whose sizes must agree or divide each other
_SIZE_CHOICES = (lambda k: 2 + k, lambda k: 4, lambda k: 6, lambda k: 8)


def bind_free_sizes(spec, bindings: dict, parameters_only: bool = False) -> dict:
    """``bindings`` with every free size (or only those of parameters and
    buffers, which must be bound to build) bound to a small value the spec traces at."""
    from .compiler.errors import SpecError
    needed = {d for _, t in spec.tensors if t.role in ("param", "buffer") or not parameters_only
              for d in t.shape if isinstance(d, str)}
    free = [s for s in spec.sizes if s not in bindings and s in needed]
    if not free:
        return bindings
    error = None
    for choice in _SIZE_CHOICES:
        candidate = {**bindings, **{s: choice(k) for k, s in enumerate(free)}}
        try:
            spec.trace(**candidate)
            return candidate
        except SpecError as exc:
            error = exc
    raise UsageError(f"no small sizes fit {spec.name} ({error}); bind them with --sizes "
                     + " ".join(f"{s}=..." for s in free))


def integer_inputs(spec, bindings: dict, rng) -> dict:
    """Random values in range for every integer input the spec reads as an index."""
    from .compiler import ir
    from .compiler.indices import index_ranges
    traced = spec.trace(**bindings)
    sizes = {k: v for k, v in bindings.items() if k in spec.sizes}
    arrays = {}
    for name, bounds in index_ranges(traced).items():
        low = max(-offset for offset, _ in bounds)
        high = min(ir.ievaluate(extent, sizes) - offset for offset, extent in bounds)
        shape = tuple(ir.ievaluate(d, sizes) for d in traced.decl(name).shape)
        arrays[name] = rng.integers(low, max(high, low + 1), size=shape)
    return arrays


# ---------------------------------------------------------------- commands


def cmd_show(args) -> int:
    from .compiler import ir
    from .aot import lower
    from .compiler.autodiff import gradient_program
    from .compiler.simplify import simplify_program
    spec, bindings = target_bindings(args)
    if args.perf:
        return show_perf(spec, bindings, args)
    bindings = bind_free_sizes(spec, bindings, parameters_only=True)
    if args.graph:
        return write_graph(spec, bindings, pathlib.Path(args.graph))
    parts = [p for p in SHOW_PARTS if getattr(args, p)] or ["forward", "backward", "saved", "c"]
    traced = simplify_program(spec.trace(**bindings))
    out = []
    if "forward" in parts:
        out += ["forward:", ir.format_program(traced), ""]
    if "backward" in parts:
        derived = gradient_program(traced)
        out += ["backward (derived):", ir.format_program(derived), ""]
    if {"fused", "saved", "c"} & set(parts) or spec.backward is not None and "backward" in parts:
        low = lower(spec, **bindings)
        if "backward" in parts and spec.backward is not None:
            out += ["backward (user-written, compiled instead of the derived one):",
                    ir.format_program(low.backward), ""]
        if "fused" in parts:
            out += ["after fusion, forward runs:", ir.format_program(low.forward), "",
                    "after fusion, backward runs:", ir.format_program(low.backward), ""]
        if "saved" in parts:
            out += ["saved for backward: " + (", ".join(low.saved) or
                                              "nothing (everything is recomputed from the inputs)"), ""]
        if "c" in parts:
            out += ["generated C:", low.source]
    print("\n".join(out).rstrip("\n"))
    return 0


def show_perf(spec, bindings: dict, args) -> int:
    """``show --perf``: each generated function timed against its roof (layerc/roofline.py)."""
    import numpy as np

    from .roofline import format_report, measure
    bindings = bind_free_sizes(spec, bindings)
    inputs = integer_inputs(spec, bindings, np.random.default_rng(0))
    report = measure(spec, bindings, inputs=inputs, seconds=args.seconds, reprobe=args.reprobe)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def write_graph(spec, bindings: dict, path: pathlib.Path) -> int:
    """The layer's stages as a picture: ``.dot`` text, or SVG/PNG/PDF drawn by
    Graphviz's ``dot`` where it is installed (the ``.dot`` text beside otherwise)."""
    import shutil
    import subprocess

    from .aot import lower
    from .compiler.graph import layer_graph
    from .compiler.plan import plan_program
    low = lower(spec, **bindings)
    dot = layer_graph(low.forward, low.backward,
                      {"forward": plan_program(low.forward), "backward": plan_program(low.backward)})
    fmt = path.suffix.lstrip(".").lower()
    if fmt == "dot":
        path.write_text(dot)
    elif fmt not in ("svg", "png", "pdf"):
        raise UsageError(f"--graph writes .dot, .svg, .png or .pdf, got {path.name}")
    elif shutil.which("dot") is None:
        path = path.with_suffix(".dot")
        path.write_text(dot)
        log.warning("Graphviz's dot is not installed: wrote the graph's text to %s", path)
    else:
        subprocess.run(["dot", f"-T{fmt}", "-o", str(path)], input=dot, text=True, check=True)
    print(f"{spec.name}: wrote {path}")
    return 0


def cmd_check(args) -> int:
    import numpy as np

    from .gradcheck import check_grad
    spec, bindings = target_bindings(args)
    bindings = bind_free_sizes(spec, bindings)
    inputs = integer_inputs(spec, bindings, np.random.default_rng(args.seed))
    for item in args.input or ():
        name, sep, file = item.partition("=")
        if not sep:
            raise UsageError(f"--input takes NAME=FILE.npy, got {item!r}")
        try:
            inputs[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--input {name}: cannot read {file}: {exc}") from None
    log.info("checking %s at %s", spec.name, " ".join(f"{k}={v}" for k, v in bindings.items()))
    started = time.perf_counter()
    report = check_grad(spec, inputs=inputs or None, seed=args.seed, tolerance=args.tolerance, **bindings)
    print(report)
    ok = report.ok
    if spec.backward is not None:
        from .backward_check import verify_backward
        verified = verify_backward(spec, inputs=inputs or None, seed=args.seed, tolerance=args.tolerance,
                                   **bindings)
        print(verified)
        ok = ok and verified.ok
    log.debug("check took %.2f s", time.perf_counter() - started)
    if not ok:
        raise Failure(f"gradient check of {spec.name} failed")
    return 0


def _build_one(args, out_dir, command: str) -> None:
    from .aot import write_package
    spec, bindings = target_bindings(args)
    result = write_package(spec, out_dir, bindings, package=args.name, compile=not args.sources_only,
                           command=command)
    built = f", extension {os.path.basename(result.so_path)}" if result.so_path else " (sources only)"
    print(f"{spec.name}: wrote {result.folder}{built}")


def read_manifest(path: pathlib.Path) -> list:
    """The ``layerc build`` arguments on each line (``#`` comments, blank lines skipped)."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            lines.append((number, text))
    return lines


def find_manifest(given) -> pathlib.Path:
    for candidate in ([pathlib.Path(given)] if given else [DEFAULT_MANIFEST, REPO / DEFAULT_MANIFEST]):
        if candidate.is_file():
            return candidate
    raise UsageError(f"no manifest {given or DEFAULT_MANIFEST} (one `layerc build` argument line per package)")


def build_all(manifest: pathlib.Path, out_dir, sources_only: bool) -> list:
    """Build every package listed in ``manifest``; paths in it are relative to the
    folder above the manifest's (the repository root for generated/manifest.txt)."""
    root = manifest.resolve().parent.parent
    built = []
    for number, text in read_manifest(manifest):
        words = shlex.split(text)
        parser = build_parser()
        try:
            sub = parser.parse_args(["build", *words])
        except SystemExit:
            raise UsageError(f"{manifest}:{number}: not valid `layerc build` arguments: {text}")
        if sub.all or sub.output:
            raise UsageError(f"{manifest}:{number}: -o and --all do not belong in a manifest")
        path, sep, name = sub.target.rpartition(":")
        sub.target = f"{root / path}{sep}{name}" if sep else str(root / sub.target)
        sub.sources_only = sources_only
        _build_one(sub, out_dir, f"layerc build --all: {text}")
        built.append(text)
    return built


def cmd_build(args) -> int:
    if args.all:
        if args.target:
            raise UsageError("build --all takes no FILE:NAME (the manifest lists them)")
        manifest = find_manifest(args.manifest)
        out_dir = args.output or manifest.parent
        started = time.perf_counter()
        built = build_all(manifest, out_dir, args.sources_only)
        log.info("built %d package(s) into %s in %.1f s", len(built), out_dir, time.perf_counter() - started)
        return 0
    if not args.target:
        raise UsageError("build needs FILE:NAME (or --all)")
    words = [args.target] + (["--sizes", *args.sizes] if args.sizes else [])
    words += [w for a in args.arg for w in ("--arg", a)] + (["--name", args.name] if args.name else [])
    command = "layerc build " + " ".join(shlex.quote(w) for w in words)
    _build_one(args, args.output or "generated", command)
    return 0


def cmd_bench(args) -> int:
    try:
        run = importlib.import_module("benchmarks.run")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", "benchmarks.run"):
            raise
        if str(REPO) not in sys.path and (REPO / "benchmarks").is_dir():
            sys.path.insert(0, str(REPO))
            return cmd_bench(args)
        raise Failure("layerc bench needs the benchmarks package of the layerc repository "
                      "(benchmarks/run.py with main(argv)); run it from a checkout") from None
    if not callable(getattr(run, "main", None)):
        raise Failure("benchmarks.run has no main(argv)")
    code = run.main(list(args.bench_args))
    return int(code or 0)


def cmd_cache(args) -> int:
    from .compiler import records, store
    if args.action == "dir":
        print(store.cache_dir())
    elif args.action == "ls":
        entries = store.list_cache()
        for e in entries:
            print(f"{e['module_name']:<48} {e['layer'] or '?':<24} {e['size'] / 1024:8.0f} KiB  "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e['mtime']))}")
        kept = records.list_records(store.cache_dir() / store.RECORDS_DIR)
        total = sum(e["size"] for e in entries) + sum(r["size"] for r in kept)
        print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} and {len(kept)} lowering "
              f"record{'' if len(kept) == 1 else 's'}, {total / 1024:.0f} KiB in {store.cache_dir()}",
              file=sys.stderr)
    elif args.action == "clear":
        removed = store.clear_cache()
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {store.cache_dir()}")
    elif args.action == "verify":
        problems = store.verify_cache()
        for p in problems:
            print(p)
        if problems:
            raise Failure(f"{len(problems)} problem(s) in the cache {store.cache_dir()}; "
                          "`layerc cache clear` removes every entry")
        print(f"cache {store.cache_dir()}: ok ({len(store.list_cache())} entries)")
    return 0


# ---------------------------------------------------------------- parser


def _add_target(p, required=True):
    p.add_argument("target", metavar="FILE:NAME", nargs=None if required else "?",
                   help="a Python file and the layer spec (or factory) in it")
    p.add_argument("--sizes", "-s", nargs="+", metavar="K=V", default=[],
                   help="bind sizes and attributes, e.g. --sizes C=256 stride=2")
    p.add_argument("--arg", "-a", action="append", metavar="K=V", default=[],
                   help="a keyword argument for a factory NAME (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerc",
        description="layerc: a code-generating layer compiler (spec → derived backward → C → module).",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage error. LAYERC_VERBOSE=1 is -v; "
               "LAYERC_CACHE_DIR sets the cache folder.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show compiler commands and details")
    parser.add_argument("-q", "--quiet", action="store_true", help="hide progress messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # -v/-q are accepted after the command too (layerc build ... -v)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show compiler commands and details")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="hide progress messages")

    p = sub.add_parser("show", parents=[common], help="print the forward, the derived backward, saved tensors and the generated C",
                       description="Print a layer's forward and derived backward in math notation, what backward "
                                   "saves, and the generated C. Flags select parts (default: all but --fused).")
    _add_target(p)
    for part, text in [("forward", "the traced forward"), ("backward", "the derived backward"),
                       ("fused", "forward and backward after fusion (what runs)"),
                       ("saved", "the tensors backward saves"), ("c", "the generated C")]:
        p.add_argument(f"--{part}", action="store_true", help=f"show {text}")
    p.add_argument("--graph", metavar="FILE", help="draw the forward and backward stages, kernels boxed, "
                                                   "into FILE (.svg, .png or .pdf with Graphviz; .dot text)")
    p.add_argument("--perf", action="store_true",
                   help="time each generated function against its roofline (bind every size with --sizes, "
                        "e.g. --sizes N=64,C=256); kernels under 50%% of their roof are flagged")
    p.add_argument("--seconds", type=float, default=0.5, help="with --perf: timing per kernel (0.5)")
    p.add_argument("--json", action="store_true", help="with --perf: the report as JSON")
    p.add_argument("--reprobe", action="store_true",
                   help="with --perf: measure the machine's bandwidth and sgemm rate again (kept in the cache)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("check", parents=[common], help="gradient check against finite differences (exit 1 on failure)",
                       description="Compare the backward (derived or user-written) with central finite "
                                   "differences in float64; a user-written backward is also compared with "
                                   "the derived one. Sizes left free are bound to small values, and "
                                   "integer inputs read as indices are drawn in range.")
    _add_target(p)
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest relative error accepted (1e-6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy",
                   help="an input array from a .npy file (integer inputs are drawn in range otherwise)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("build", parents=[common], help="write an importable ahead-of-time package (numpy + cffi only)",
                       description="Render the layer into OUT/<package>/ (C source, cdef, runtime wrapper, "
                                   "parameters, build script, setup.py) and compile its extension with "
                                   "portable flags. The package imports with only numpy and cffi.")
    _add_target(p, required=False)
    p.add_argument("-o", "--output", metavar="DIR", help="folder receiving the package (generated/)")
    p.add_argument("--name", help="package name (default: the spec's name in snake_case)")
    p.add_argument("--sources-only", action="store_true",
                   help="do not compile; build later with python -m <package>.build")
    p.add_argument("--all", action="store_true", help="build every package listed in the manifest")
    p.add_argument("--manifest", help=f"with --all: the manifest ({DEFAULT_MANIFEST})")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("bench", help="time layers and training steps against PyTorch (benchmarks/run.py)",
                       add_help=False,
                       description="Runs benchmarks.run.main(argv) with the remaining arguments.")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("cache", parents=[common], help="the JIT build cache: dir, ls, clear, verify")
    p.add_argument("action", choices=["dir", "ls", "clear", "verify"])
    p.set_defaults(func=cmd_cache)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    if verbose:
        os.environ["LAYERC_VERBOSE"] = "1"
    verbose = verbose or os.environ.get("LAYERC_VERBOSE") == "1"
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.propagate = False


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # everything after `bench` belongs to the benchmarks (argparse's REMAINDER
    # would still claim a leading --option)
    head = 0
    while head < len(argv) and argv[head] in ("-v", "--verbose", "-q", "--quiet"):
        head += 1
    if head < len(argv) and argv[head] == "bench":
        args = parser.parse_args(argv[:head + 1])
        args.bench_args = argv[head + 1:]
    else:
        args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (`layerc show ... | head`): stop quietly, and keep
        # Python's exit flush from failing on the closed pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except UsageError as exc:
        print(f"layerc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Failure as exc:
        print(f"layerc {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:   # spec, build and runtime errors: the message, not a traceback
        from .compiler.cc import BuildError
        from .compiler.errors import SpecError
        if args.verbose or not isinstance(exc, (SpecError, BuildError, ValueError, TypeError, FileExistsError,
                                                ImportError, OSError)):
            import traceback
            traceback.print_exc()
        print(f"layerc {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
