"""Integrity of a record: a SHA-256 digest over its canonical JSON, an optional Ed25519
signature (cryptography), and verification of a record or of the report that embeds it.

Hand-written here: the canonical form and the checks; the cryptography is the library's.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcheck.errors import MlcheckError

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
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
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
        key = serialization.load_pem_public_key(Path(path).read_bytes())
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
    """What was checked, and what did not match."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def embedded_record(page: str, element: str = RECORD_SCRIPT_ID) -> dict[str, Any] | None:
    """The record a report embeds (in a `<script>` element, see `embed`); with
    `element="mlcheck-comparison"`, the comparison it shows, or None."""
    found = re.search(re.escape(f'<script type="{RECORD_SCRIPT_TYPE}" id="{element}">')
                      + r"(.*?)</script>", page, flags=re.S)
    if not found:
        if element != RECORD_SCRIPT_ID:
            return None
        raise MlcheckError("this HTML file embeds no mlcheck record")
    try:
        return json.loads(gzip.decompress(base64.b64decode(found.group(1).strip())))
    except (ValueError, OSError, EOFError) as exc:
        raise MlcheckError(f"the record embedded in this HTML file is damaged: {exc}"
                           ) from None


def verify(path: Path, public_key: Path | None = None, artifacts: Path | None = None
           ) -> Verification:
    """Check a record (JSON) or a report (HTML): its digest, its signature, for a report
    that the page is the one its record renders to, and optionally the files it names."""
    text = Path(path).read_text(encoding="utf-8")
    page = path.suffix.lower() in (".html", ".htm") or text.lstrip().startswith("<")
    record = embedded_record(text) if page else json.loads(text)
    if not isinstance(record, dict):
        raise MlcheckError(f"{path} holds no mlcheck record (a JSON object)")
    result = Verification()
    block = record.get("integrity")
    if isinstance(block, dict) and block.get("algorithm") != "sha256":
        result.problems.append(f"unknown digest algorithm {block.get('algorithm')!r}; "
                               "mlcheck writes sha256")
        return result
    if not isinstance(block, dict) or "digest" not in block:
        result.problems.append("the record has no digest: it was written without integrity "
                               "information, so nothing can be verified")
        return result
    actual = digest(record)
    if actual != block["digest"]:
        result.problems.append(f"digest mismatch: the record's content hashes to {actual}, "
                               f"not the recorded {block['digest']}; it was changed after "
                               f"it was written{_changed_hint(record)}")
    else:
        result.checked.append(f"digest sha256 {actual}")
    _verify_signature(block, public_key, result)
    if page and not result.problems:
        from mlcheck.engine import package_version
        from mlcheck.report.html import render_html

        rendered = render_html(record, embedded_record(text, "mlcheck-comparison"))
        if rendered.rstrip("\n") == text.rstrip("\n"):
            result.checked.append("the page is exactly what its record renders to")
        elif record.get("mlcheck_version") != package_version("mlcheck"):
            result.problems.append(
                f"the page differs from what its record renders to with this mlcheck "
                f"({package_version('mlcheck')}); it was written by mlcheck "
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
    odd = [c["id"] for run in runs for c in run.get("checks", [])
           if c.get("verdict") == "pass" and c.get("blocking")]
    return f" (checks that claim `pass` yet block: {', '.join(odd)})" if odd else ""


def _verify_signature(block: dict, public_key: Path | None, result: Verification) -> None:
    if "signature" in block and not isinstance(block["signature"], dict):
        result.problems.append("the signature block is damaged (not a signature)")
        return
    signature = block.get("signature")
    if signature is None:
        if public_key is not None:
            result.problems.append("the record is not signed, but a public key was given")
        return
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    embedded = base64.b64decode(signature["public_key"])
    if public_key is not None and load_public_key(public_key) != embedded:
        result.problems.append(f"signed with another key than {public_key} (signer "
                               f"{signature['signer']!r})")
        return
    try:
        Ed25519PublicKey.from_public_bytes(embedded).verify(
            base64.b64decode(signature["value"]),
            _signed_message(block["digest"], signature["signer"], signature["signed_at"]))
    except InvalidSignature:
        result.problems.append(f"the signature does not match the digest, signer and date "
                               f"(signer {signature['signer']!r})")
        return
    trusted = "the given public key" if public_key is not None else (
        "the key embedded in the record only: this proves the record was not changed since "
        "that key signed it, not whose key it is; pass --public-key to check the signer")
    result.checked.append(f"Ed25519 signature by {signature['signer']} on "
                          f"{signature['signed_at']}, with {trusted}")


def _verify_artifacts(record: dict[str, Any], root: Path, result: Verification) -> None:
    """Re-hash the model, baseline, datasets and policy files the record names (paths
    relative to `root`) and compare them with the recorded SHA-256."""
    if not root.is_dir():
        raise MlcheckError(f"--artifacts: not a folder: {root}")
    runs = record.get("runs") or [record]
    for run in runs:
        subject = run["subject"]
        files = [(f"model {m['path']}", m) for m in (subject.get("model"),
                                                     subject.get("baseline"))
                 if m and m.get("path") and m.get("sha256")]
        profile = subject.get("reference_profile")
        if profile and profile.get("path"):
            files.append((f"reference profile {profile['path']}", profile))
        files += [(f"dataset {name} {d['path']}", d)
                  for name, d in subject.get("datasets", {}).items()]
        files += [(f"policy file {s['path']}", s) for s in run["policy"].get("sources", [])]
        for label, entry in files:
            path = root / entry["path"]
            if not path.exists():
                result.problems.append(f"{label}: not found under {root}")
                continue
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            if actual != entry["sha256"]:
                result.problems.append(f"{label}: SHA-256 {actual} differs from the "
                                       f"recorded {entry['sha256']}")
            else:
                result.checked.append(f"{label}: SHA-256 matches")


def embed(record: dict[str, Any]) -> str:
    """The record as the text of a script element: JSON (in the record's own key order, so
    it renders to the same page), gzip-compressed and base64-encoded, which keeps the
    report small and leaves nothing in it that could end the element early."""
    data = json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(data, mtime=0)).decode("ascii")
