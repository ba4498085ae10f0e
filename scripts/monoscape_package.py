#!/usr/bin/env python3
"""Build and check Monoscape application packages.

A Monoscape package is a zip of a compiled ASP.NET site with web.config at the
root. An app source folder holds ``src/*.cs`` (code-behind, compiled with
Mono's ``mcs`` into ``bin/<Name>.dll``) and ``site/`` (pages, web.config).

    monoscape_package.py build apps/hello --version 1.0.0 -o dist/hello-1.0.0.zip
    monoscape_package.py build apps/hello --version 2.0.0-broken --define BROKEN -o ...
    monoscape_package.py check dist/hello-1.0.0.zip
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "module_utils"))
from monoscape_package import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_RATIO,
    DEFAULT_MAX_UNPACKED,
    PackageError,
    inspect,
)

# fixed timestamp for zip entries: same inputs -> same zip layout
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _assembly_name(app_dir: Path) -> str:
    return "".join(part.capitalize() for part in app_dir.resolve().name.replace("_", "-").split("-")) + "App"


def compile_app(app_dir: Path, version: str, defines: list[str], out_dir: Path) -> Path:
    sources = sorted((app_dir / "src").glob("*.cs"))
    if not sources:
        raise PackageError(f"{app_dir}/src has no .cs files to compile")
    mcs = shutil.which("mcs")
    if mcs is None:
        raise PackageError("mcs (Mono C# compiler) not found: apt-get install mono-mcs libmono-system-web4.0-cil")
    build_info = out_dir / "BuildInfo.cs"
    literal = json.dumps(version)  # a valid C# string literal for printable ASCII
    build_info.write_text(
        f"namespace Monoscape.Samples {{\n  static class BuildInfo {{ public const string Version = {literal}; }}\n}}\n"
    )
    (out_dir / "site" / "bin").mkdir(parents=True)
    dll = out_dir / "site" / "bin" / (_assembly_name(app_dir) + ".dll")
    cmd = [mcs, "-nologo", "-optimize+", "-target:library", "-r:System.Web.dll", f"-out:{dll}"]
    cmd += [f"-define:{d}" for d in defines]
    cmd += [str(s) for s in sources] + [str(build_info)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PackageError(f"mcs failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return dll


def build(app_dir: Path, version: str, defines: list[str], output: Path) -> dict:
    site = app_dir / "site"
    if not (site / "web.config").is_file():
        raise PackageError(f"{site}/web.config is missing: a Monoscape package needs web.config at its root")
    with tempfile.TemporaryDirectory(prefix="monoscape-pkg-") as tmp:
        work = Path(tmp)
        compile_app(app_dir, version, defines, work)
        shutil.copytree(site, work / "site", dirs_exist_ok=True)
        (work / "site" / "VERSION").write_text(version + "\n")
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_suffix(output.suffix + ".part")
        entries = sorted(p for p in (work / "site").rglob("*"))
        # directories first: the original Monoscape failed on zips whose root files
        # came before any directory entry
        entries.sort(key=lambda p: (not p.is_dir(), str(p)))
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in entries:
                rel = path.relative_to(work / "site").as_posix()
                info = zipfile.ZipInfo(rel + ("/" if path.is_dir() else ""), ZIP_EPOCH)
                info.external_attr = ((0o40755 if path.is_dir() else 0o100644) << 16) | (0x10 if path.is_dir() else 0)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, b"" if path.is_dir() else path.read_bytes())
        os.replace(partial, output)
    return inspect(str(output))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile an app folder and zip it as a Monoscape package")
    b.add_argument("app_dir", type=Path)
    b.add_argument("--version", required=True)
    b.add_argument("--define", action="append", default=[], help="C# conditional symbol (repeatable)")
    b.add_argument("-o", "--output", type=Path, required=True)
    c = sub.add_parser("check", help="validate a package as the deploy playbook will")
    c.add_argument("package")
    c.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest package file")
    c.add_argument("--max-unpacked", type=int, default=DEFAULT_MAX_UNPACKED, help="largest unpacked size")
    c.add_argument("--max-ratio", type=int, default=DEFAULT_MAX_RATIO, help="largest unpacked:package ratio")
    c.add_argument("--max-entries", type=int, default=DEFAULT_MAX_ENTRIES, help="most entries")
    c.add_argument("--health-path", default="", help="page the health check asks for: must be in the package")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            info = build(args.app_dir, args.version, args.define, args.output)
            info["path"] = str(args.output)
        else:
            info = inspect(
                args.package,
                args.max_bytes,
                max_unpacked=args.max_unpacked,
                max_ratio=args.max_ratio,
                max_entries=args.max_entries,
                health_path=args.health_path,
            )
    except PackageError as exc:
        print(f"monoscape_package: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
