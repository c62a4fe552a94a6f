"""`python -m facechain_ext`: face detection, similarity, training-photo preparation, models and FACT files from the command line.

Every command prints exactly one JSON document on stdout (logs go to stderr) and exits non-zero when the command as a
whole fails: 1 for a FaceChainError (the document is `{"error": {code, message, context}}`), 2 for bad arguments,
3 for an unexpected internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import default_settings
from .context import FaceChainContext
from .errors import FaceChainError

log = logging.getLogger("facechain_ext.cli")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as FaceChainError, so they come out as JSON too."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise FaceChainError("invalid_request", f"Command line: {message}.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m facechain_ext", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=["auto", "insightface", "dlib"], default=None, help="face backend (default: settings)"
    )
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="FaceChain models folder (identities live in <dir>/identities)"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    detect = commands.add_parser("detect", help="faces in each image")
    detect.add_argument("paths", nargs="+", metavar="PATH")

    similarity = commands.add_parser("similarity", help="how much each candidate looks like the reference person")
    similarity.add_argument("--reference", nargs="+", required=True, metavar="PATH")
    similarity.add_argument("--candidates", nargs="+", required=True, metavar="PATH")
    similarity.add_argument("--top-k", type=int, default=None)

    prepare = commands.add_parser("prepare", help="prepare training photos and store an identity (or write --out DIR)")
    prepare.add_argument("paths", nargs="+", metavar="PATH")
    prepare.add_argument("--name", required=True)
    prepare.add_argument("--out", type=Path, default=None, help="write the identity folder here instead of the store")
    prepare.add_argument("--phrase", default=None, help="class phrase for the captions (default: from gender/age)")
    prepare.add_argument("--trigger", default=None, help="trigger word of the captions (default: fcsks)")
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing identity / --out folder")
    mask = prepare.add_mutually_exclusive_group()
    mask.add_argument("--head-mask", dest="head_mask", action="store_true", default=None,
                      help="paint all but the head white (needs the face-parsing model; default: when it is installed)")
    mask.add_argument("--no-head-mask", dest="head_mask", action="store_false", help="keep the background")

    models = commands.add_parser("models", help="status of the optional models (or: models download NAME)")
    model_commands = models.add_subparsers(dest="models_command", parser_class=_Parser)
    download = model_commands.add_parser("download", help="download, verify and install one manifest model")
    download.add_argument("name", metavar="NAME")
    download.add_argument("--allow-download", action="store_true", help="consent to this download (required)")

    fact = commands.add_parser("fact", help="FaceChain-FACT model files")
    fact_commands = fact.add_subparsers(dest="fact_command", required=True, parser_class=_Parser)
    convert = fact_commands.add_parser("convert", help="write an fp16 safetensors copy of a FACT file, checked strictly")
    convert.add_argument("source", type=Path, metavar="SRC")
    convert.add_argument("--out", type=Path, default=None, help="output file (default: <SRC stem>.safetensors beside SRC)")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def run_detect(ctx: FaceChainContext, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from .imaging import load_image, load_scale

    analyzer = ctx.analyzer(args.backend)
    results = []
    for path in args.paths:
        try:
            image = load_image(path, path)
            found = analyzer.find_faces(image, embed=False)  # the orientation policy of every surface
            faces = [face.to_dict(load_scale(image)) for face in found.faces]
            results.append({"path": path, "faces": faces, "rotation": found.rotation, "error": None})
        except FaceChainError as err:
            results.append({"path": path, "faces": [], "rotation": None, "error": {"code": err.code, "message": err.message}})
    ok = any(r["error"] is None for r in results)
    return {"backend": analyzer.name, "results": results}, ok


def run_similarity(ctx: FaceChainContext, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The same scoring as POST /face/similarity (`faces.compare`): null score + an error entry per unusable photo."""
    from .faces.compare import compare_photos

    analyzer = ctx.analyzer(args.backend)
    doc = compare_photos(analyzer, [(p, p) for p in args.reference], [(p, p) for p in args.candidates], top_k=args.top_k)
    return doc, True


def run_prepare(ctx: FaceChainContext, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from .identity_creation import IdentityFromPhotos, create_identity_from_photos

    request = IdentityFromPhotos(
        name=args.name, photos=[(p, p) for p in args.paths], overwrite=args.overwrite, phrase=args.phrase,
        trigger=args.trigger, backend=args.backend, head_mask=args.head_mask, out_dir=args.out,
    )
    created = create_identity_from_photos(ctx, request)
    stored = created.stored_report()
    for photo in stored["photos"]:
        photo["crop"] = None if photo["crop"] is None else str(created.dir / photo["crop"])
    return {**stored, "name": created.name, "identity_dir": str(created.dir)}, True


def run_models(ctx: FaceChainContext, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """`models`: every manifest model's status; `models download NAME --allow-download`: fetch one (progress on stderr)."""
    from .models import get_spec, model_status

    if args.models_command != "download":
        return {"models": model_status(ctx.settings)}, True
    from .downloads import download_model

    settings = ctx.settings.with_(allow_downloads=bool(args.allow_download))  # offline still wins
    last = [-1]

    def progress(done: int, total: int, text: str) -> None:
        percent = int(100 * done / total) if total else 0
        if percent != last[0]:  # one line per percent, not per chunk
            last[0] = percent
            print(f"{percent:3d}% {text}", file=sys.stderr, flush=True)

    return download_model(get_spec(args.name), settings, progress=progress), True


def run_fact(ctx: FaceChainContext, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """`fact convert SRC [--out DST]`: fp16 safetensors copy of a FACT release file (facechain_ext/fact/convert.py)."""
    from .fact.convert import convert_checkpoint

    return convert_checkpoint(args.source, args.out, overwrite=bool(args.overwrite)), True


COMMANDS = {"detect": run_detect, "similarity": run_similarity, "prepare": run_prepare, "models": run_models, "fact": run_fact}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        settings = default_settings()
        if args.models_dir is not None:
            settings = settings.with_(models_dir=args.models_dir)
        if args.backend is not None:
            settings = settings.with_(face_backend=args.backend)
        settings.check_folders()  # a file given as a folder is a clear configuration error, before any work
        doc, ok = COMMANDS[args.command](FaceChainContext(settings), args)
        code = 0 if ok else 1
    except FaceChainError as err:
        log.error("%s: %s", err.code, err.message)
        doc, code = {"error": err.to_dict()}, 2 if err.code == "invalid_request" else 1
    except Exception as exc:  # noqa: BLE001 - the CLI promises JSON on stdout whatever happens
        log.exception("internal error")
        doc, code = {"error": {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "context": {}}}, 3
    print(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return code
