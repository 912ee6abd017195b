"""Integrity of a record: a SHA-256 digest over its canonical JSON, an optional Ed25519
signature (cryptography), and verification of a record or of the report that embeds it.

Hand-written here: the canonical form and the checks; the cryptography is the library's.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcheck.errors import InputError, MlcheckError
from mlcheck.inputs import KEY, RECORD, decompress_limited, not_regular, read_limited, sha256_file

RECORD_SCRIPT_ID = "mlcheck-record"
RECORD_SCRIPT_TYPE = "application/gzip+base64"  # the record's JSON, gzip, base64


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes the digest covers: the record without its `integrity` block, as JSON with
    sorted keys and no spaces, UTF-8."""
    body = {k: v for k, v in record.items() if k != "integrity"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def seal(record: dict[str, Any], key_path: Path | None = None, signer: str | None = None,
         ) -> dict[str, Any]:
    """The record with its `integrity` block: the digest, and a signature when a key is
    given (over the digest, the signer and the date, so none can be changed alone)."""
    block: dict[str, Any] = {"algorithm": "sha256", "digest": digest(record)}
    if key_path is not None:
        if not signer:
            raise MlcheckError("--sign needs --signer \"Name <email>\": a signature names "
                               "the responsible person")
        private = load_private_key(key_path)
        signed_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        block["signature"] = {
            "algorithm": "ed25519", "signer": signer, "signed_at": signed_at,
            "public_key": _b64(_public_bytes(private.public_key())),
            "value": _b64(private.sign(_signed_message(block["digest"], signer, signed_at))),
        }
    return {**record, "integrity": block}


def _signed_message(digest_hex: str, signer: str, signed_at: str) -> bytes:
    return json.dumps({"digest": digest_hex, "signer": signer, "signed_at": signed_at},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- keys


def generate_key(path: Path) -> tuple[Path, Path]:
    """An Ed25519 key pair: PATH (private, PEM, readable by the owner only) and PATH.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if target.exists():
            raise MlcheckError(f"{target} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(private_pem)
    public_path.write_bytes(public_pem)
    return path, public_path


def load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(read_limited(Path(path), "signing key", KEY),
                                                 password=None)
    except FileNotFoundError:
        raise MlcheckError(f"signing key not found: {path}") from None
    except (ValueError, TypeError) as exc:
        raise MlcheckError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise MlcheckError(f"{path} is not an Ed25519 key (make one with `mlcheck keygen`)")
    return key


def load_public_key(path: Path) -> bytes:
    """Raw public key bytes from a PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(read_limited(Path(path), "public key", KEY))
    except FileNotFoundError:
        raise MlcheckError(f"public key not found: {path}") from None
    except ValueError as exc:
        raise MlcheckError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise MlcheckError(f"{path} is not an Ed25519 public key")
    return _public_bytes(key)


def _public_bytes(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ------------------------------------------------------------------------ verify


@dataclass
class Verification:
    """What was checked, what did not match, what could not be checked, and what a pass
    does not prove."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # mismatches: something was changed
    missing: list[str] = field(default_factory=list)  # required, but absent or unreadable
    notes: list[str] = field(default_factory=list)
    sealed: bool = True  # False: the record has no digest at all

    @property
    def intact(self) -> bool:
        return self.sealed and not self.problems and not self.missing

    @property
    def status(self) -> str:
        """ALTERED (a mismatch), UNSEALED (no digest), UNVERIFIED (a signature or file that
        was asked for is missing or unreadable) or INTACT."""
        if self.problems:
            return "ALTERED"
        if not self.sealed:
            return "UNSEALED"
        return "UNVERIFIED" if self.missing else "INTACT"


def embedded_record(page: str, element: str = RECORD_SCRIPT_ID) -> dict[str, Any] | None:
    """The record a report embeds (in a `<script>` element, see `embed`); with
    `element="mlcheck-comparison"`, the comparison it shows, or None. It is decompressed
    within the record size limit (MLCHECK_MAX_RECORD_BYTES), so a page cannot hold a bomb."""
    found = re.search(re.escape(f'<script type="{RECORD_SCRIPT_TYPE}" id="{element}">')
                      + r"(.*?)</script>", page, flags=re.S)
    if not found:
        if element != RECORD_SCRIPT_ID:
            return None
        raise MlcheckError("this HTML file embeds no mlcheck record")
    try:
        data = base64.b64decode(found.group(1).strip())
        what = "record" if element == RECORD_SCRIPT_ID else "comparison"
        return json.loads(decompress_limited(data, f"the {what} embedded in this HTML file",
                                             RECORD))
    except (ValueError, OSError, EOFError) as exc:
        raise MlcheckError(f"the record embedded in this HTML file is damaged: {exc}"
                           ) from None


def read_stored(path: Path) -> tuple[dict[str, Any], str | None]:
    """The record in a JSON record or an HTML report (regular files within the record size
    limit), and the page's text when it is a report."""
    text = read_limited(Path(path), "record", RECORD).decode("utf-8")
    if Path(path).suffix.lower() in (".html", ".htm") or text.lstrip().startswith("<"):
        return embedded_record(text), text
    return json.loads(text), None


def verify(path: Path, public_key: Path | None = None, artifacts: Path | None = None,
           require_signature: bool = False) -> Verification:
    """Check a record (JSON) or a report (HTML): its digest, its signature, for a report
    that the page is the one its record renders to, and optionally the files it names.

    A digest alone proves little: anyone who edits a record can recompute it. Only a
    signature by a known key (`public_key`) shows a record is what its signer wrote;
    `require_signature` (implied by `public_key`) makes an unsigned record fail."""
    record, page = read_stored(path)
    if not isinstance(record, dict):
        raise MlcheckError(f"{path} holds no mlcheck record (a JSON object)")
    result = Verification()
    block = record.get("integrity")
    if isinstance(block, dict) and block.get("algorithm") != "sha256":
        result.problems.append(f"unknown digest algorithm {block.get('algorithm')!r}; "
                               "mlcheck writes sha256")
        return result
    if not isinstance(block, dict) or not isinstance(block.get("digest"), str):
        result.sealed = False
        result.missing.append("the record has no digest: it was written without integrity "
                              "information (or it was removed), so nothing can be verified")
        return result
    actual = digest(record)
    if actual != block["digest"]:
        result.problems.append(f"digest mismatch: the record's content hashes to {actual}, "
                               f"not the recorded {block['digest']}; it was changed after "
                               f"it was written{_changed_hint(record)}")
    else:
        result.checked.append(f"digest sha256 {actual}")
    _verify_signature(block, public_key, require_signature or public_key is not None, result)
    if page is not None and not result.problems:
        from mlcheck import DISTRIBUTION
        from mlcheck.engine import package_version
        from mlcheck.report.html import render_html

        rendered = render_html(record, embedded_record(page, "mlcheck-comparison"))
        if rendered.rstrip("\n") == page.rstrip("\n"):
            result.checked.append("the page is exactly what its record renders to")
        elif record.get("mlcheck_version") != package_version(DISTRIBUTION):
            result.problems.append(
                f"the page differs from what its record renders to with this mlcheck "
                f"({package_version(DISTRIBUTION)}); it was written by mlcheck "
                f"{record.get('mlcheck_version')}, so verify it with that version")
        else:
            result.problems.append("the page differs from what its embedded record renders "
                                   "to: the visible report was edited")
    if artifacts is not None:
        _verify_artifacts(record, artifacts, result)
    return result


def _changed_hint(record: dict[str, Any]) -> str:
    """Name the checks whose verdict disagrees with their own record (a common edit)."""
    runs = record.get("runs") or [record]
    odd = [c.get("id") for run in runs if isinstance(run, dict)
           for c in (run.get("checks") or []) if isinstance(c, dict)
           and c.get("verdict") == "pass" and c.get("blocking")]
    return f" (checks that claim `pass` yet block: {', '.join(map(str, odd))})" if odd else ""


SIGNATURE_FIELDS = ("signer", "signed_at", "public_key", "value")


def _signature_fields(signature: Any) -> tuple[str, str, bytes, bytes]:
    """signer, signed_at, raw public key and raw signature of a signature block; a
    ValueError says what is wrong with a damaged one."""
    if not isinstance(signature, dict):
        raise ValueError("not a signature")
    if signature.get("algorithm", "ed25519") != "ed25519":
        raise ValueError(f"algorithm {signature['algorithm']!r}, not ed25519")
    absent = [k for k in SIGNATURE_FIELDS if k not in signature]
    if absent:
        raise ValueError(f"no {', '.join(absent)}")
    wrong = [k for k in SIGNATURE_FIELDS if not isinstance(signature[k], str)]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} must be text")
    raw = {}
    for name, size in (("public_key", 32), ("value", 64)):
        try:
            raw[name] = base64.b64decode(signature[name], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name} is not base64") from None
        if len(raw[name]) != size:
            raise ValueError(f"{name} holds {len(raw[name])} bytes, not {size}")
    return signature["signer"], signature["signed_at"], raw["public_key"], raw["value"]


def own_signature_problem(block: dict) -> str | None:
    """Why a sealed record's signature does not hold against the key it embeds (damaged,
    or not over this digest, signer and date); None when it holds or there is none.
    Renderers use it so a forged signature is never shown as a real one."""
    if block.get("signature") is None:
        return None
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        signer, signed_at, embedded, value = _signature_fields(block["signature"])
    except ValueError as exc:
        return f"the signature block is damaged ({exc})"
    try:
        Ed25519PublicKey.from_public_bytes(embedded).verify(
            value, _signed_message(str(block.get("digest")), signer, signed_at))
    except (InvalidSignature, ValueError):
        return f"the signature does not match the digest, signer and date (signer {signer!r})"
    return None


def _verify_signature(block: dict, public_key: Path | None, required: bool,
                      result: Verification) -> None:
    if "signature" not in block or block["signature"] is None:
        if required:
            result.missing.append(
                "the record is not signed, but "
                + ("a public key was given" if public_key else "--require-signature asks "
                   "for a signature"))
        else:
            result.notes.append(
                "the record is not signed: its digest detects accidental edits only, since "
                "anyone can recompute it after changing the record; sign records (`mlcheck "
                "check --sign`) and verify with --require-signature --public-key KEY.pub")
        return
    problem = own_signature_problem(block)
    if problem:
        result.problems.append(problem)
        return
    signer, signed_at, embedded, _ = _signature_fields(block["signature"])
    if public_key is not None and load_public_key(public_key) != embedded:
        result.problems.append(f"signed with another key than {public_key} (signer "
                               f"{signer!r})")
        return
    trusted = "the given public key" if public_key is not None else (
        "the key embedded in the record only: this proves the record was not changed since "
        "that key signed it, not whose key it is; pass --public-key to check the signer")
    result.checked.append(f"Ed25519 signature by {signer} on {signed_at}, with {trusted}")


def _verify_artifacts(record: dict[str, Any], root: Path, result: Verification) -> None:
    """Re-hash the model, baseline, datasets and policy files the record names and compare
    them with the recorded SHA-256. The record may come from anyone, so only regular files
    inside `root` are read (no absolute paths, no way out by `..` or a symbolic link), and
    they are hashed as a stream."""
    if not root.is_dir():
        raise MlcheckError(f"--artifacts: not a folder: {root}")
    folder = root.resolve()
    for label, entry in _named_files(record):
        recorded, expected = entry.get("path"), entry.get("sha256")
        if not isinstance(recorded, str) or not isinstance(expected, str):
            result.problems.append(f"{label}: the record gives no path and SHA-256 for it")
            continue
        if Path(recorded).is_absolute():
            result.missing.append(f"{label}: not read: the record gives an absolute path, and "
                                  f"--artifacts reads only files inside {root}")
            continue
        path = root / recorded
        if not path.resolve().is_relative_to(folder):
            result.missing.append(f"{label}: not read: the path leads outside {root}")
            continue
        try:
            kind = not_regular(os.stat(path).st_mode)
            if kind:
                result.missing.append(f"{label}: is {kind}, not a regular file; not read")
                continue
            actual, _ = sha256_file(path, label)
        except FileNotFoundError:
            result.missing.append(f"{label}: not found under {root}")
            continue
        except (OSError, InputError) as exc:
            result.missing.append(f"{label}: cannot be read: {getattr(exc, 'strerror', exc)}")
            continue
        if actual != expected:
            result.problems.append(f"{label}: SHA-256 {actual} differs from the "
                                   f"recorded {expected}")
        else:
            result.checked.append(f"{label}: SHA-256 matches")


def _named_files(record: dict[str, Any]) -> list[tuple[str, dict]]:
    """(label, {path, sha256}) for every file a run or session record names."""
    files: list[tuple[str, dict]] = []

    def entry(value: Any) -> dict:
        return value if isinstance(value, dict) else {}

    runs = record.get("runs") or [record]
    for run in (r for r in runs if isinstance(r, dict)):
        subject = entry(run.get("subject"))
        for model in (entry(subject.get("model")), entry(subject.get("baseline"))):
            if model.get("path") and model.get("sha256"):
                files.append((f"model {model['path']}", model))
        profile = entry(subject.get("reference_profile"))
        if profile.get("path"):
            files.append((f"reference profile {profile['path']}", profile))
        for name, dataset in entry(subject.get("datasets")).items():
            files.append((f"dataset {name} {entry(dataset).get('path')}", entry(dataset)))
        for source in entry(run.get("policy")).get("sources") or []:
            files.append((f"policy file {entry(source).get('path')}", entry(source)))
    return files


def embed(record: dict[str, Any]) -> str:
    """The record as the text of a script element: JSON (in the record's own key order, so
    it renders to the same page), gzip-compressed and base64-encoded, which keeps the
    report small and leaves nothing in it that could end the element early."""
    data = json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(data, mtime=0)).decode("ascii")
