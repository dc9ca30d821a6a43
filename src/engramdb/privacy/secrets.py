"""Secrets found on write: provider API keys, private keys, JWTs, stated passwords and PINs, card numbers (Luhn),
IBANs (mod 97) and national identity numbers.

Each finding is a span of the text. What happens to it is configured (PrivacyConfig.secrets):
- mask: the span becomes "[REDACTED:<kind>]"; nothing of it is kept;
- refuse: the write fails with a SecretError naming the kinds found (never the values);
- encrypt: the span becomes "[SECRET:<n>]" and its AES-GCM ciphertext goes in metadata["secrets"]; the key
  comes from the environment or a file and is never written to the store. `reveal` puts the values back.
The keyword index, vectors and history only ever see the masked text.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ValidationError
from ..regex_gates import Gates

MASK = "[REDACTED:{kind}]"
SEALED = "[SECRET:{n}]"
_SEALED_RE = re.compile(r"\[SECRET:(\d+)\]")


class SecretError(ValidationError):
    """A write refused because its text holds a secret (PrivacyConfig.secrets = "refuse")."""


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    category: str  # the sensitivity category it implies


# A value after "password is" that is an opinion, not a password.
_NOT_A_VALUE = {
    "the", "a", "an", "my", "your", "same", "too", "very", "so", "not", "still", "weak", "strong", "secure",
    "easy", "hard", "long", "short", "correct", "wrong", "changed", "required", "needed", "on", "in", "at", "for",
    "something", "nothing", "expired", "reset", "saved", "stored", "written", "this", "that", "it", "just",
    "simple", "complicated", "different", "new", "old", "fine", "ok", "okay", "there", "here", "what", "which",
}

_PROVIDER: list[tuple[str, str]] = [
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}"),
    ("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("twilio_key", r"\bSK[0-9a-f]{32}\b"),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("private_key", r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY"
                    r"(?: BLOCK)?-----|\Z)"),
    ("aws_secret_key", r"(?i:aws[_ ]?secret[_ ]?(?:access[_ ]?)?key\b[^A-Za-z0-9/+]{0,20})(?P<v>[A-Za-z0-9/+]{40})"),
    ("url_credentials", r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@[^\s]+"),
]
# "password is X", "PIN: 1234", "passphrase 'a b c'", "wifi code is X"
_STATED = re.compile(
    r"(?i:\b(?P<k>pass(?:word|wd|code|phrase)|pwd|pin(?:\s*(?:code|number))?|(?:alarm|door|gate|keypad|safe|lock|"
    r"garage|access|entry|unlock|security|wifi|wi-fi)\s+code|combination|recovery\s+phrase|seed\s+phrase|"
    r"(?:api|secret|access|auth)[_ -]?(?:key|token)|secret|token|credentials?)"
    r"(?:\s+(?:for|to|of|on)\s+(?:the\s+|my\s+|our\s+)?[\w-]+(?:\s+[\w-]+)?)?"
    r"\s*(?:is|was|=|:|to|are|reads)\s*(?:now\s+|still\s+|set\s+to\s+)?)"
    r"(?P<v>'[^'\n]{3,80}'|\"[^\"\n]{3,80}\"|[^\s,;]{3,100}(?:\s*/\s*[^\s,;]{3,60})?|\d(?:[ -]?\d){3,11})"
)
_PHRASE = re.compile(r"(?i:\b(?:recovery|seed|mnemonic|backup)\s+(?:phrase|words)\b[^.\n:]{0,30}?(?:is|are|:)\s*)"
                     r"(?P<v>[a-z]+(?:[ ,]+[a-z]+){5,23})")
_LOGIN = re.compile(r"(?i:\b(?:log\s*in|login|sign\s*in|username|user)\b[^.\n]{0,40}?)"
                    r"(?P<v>\b[\w.@-]{2,60}\s*/\s*[^\s,;]{3,60})")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_NINO = re.compile(r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
# "<id document> (number|no|#) (is|:) VALUE", the value carrying a digit
_ID_DOC = re.compile(
    r"(?i:\b(?:passport|social\s+security|ssn|sin|social\s+insurance|national\s+(?:id|insurance)|id\s+card|"
    r"identity\s+card|driver'?s\s+licen[cs]e|driving\s+licen[cs]e|licen[cs]e|tax\s+id|tin|nhs|medicare|"
    r"green\s+card|alien|residence\s+permit|aadhaar|personnummer|bsn|nie|dni|steuer-?id|voter)\b"
    r"(?:[^.\n\d]|(?i:\bno|\bnr)\.){0,30}?)(?P<v>[A-Z0-9][A-Z0-9 -]{4,22}[0-9][A-Z0-9]*(?:[ -][A-Z]{1,2}\b)?)"
)
_CARD_CONTEXT = re.compile(r"(?i)\b(card|visa|mastercard|amex|credit|debit|cvv|cc)\b")


def luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def scan(text: str) -> list[Finding]:
    """Every secret span in `text`, left to right, overlaps merged (the earlier, longer finding wins)."""
    # a write scans each text twice (to protect it, then to label it): a short text's findings are kept
    return list(_scan_cached(text)) if len(text) <= CACHED_CHARS else _scan(text)


CACHED_CHARS = 4000  # texts up to this long have their findings cached (at most ~1,024 of them: a few MB)


@lru_cache(maxsize=1024)
def _scan_cached(text: str) -> tuple[Finding, ...]:
    return tuple(_scan(text))


def _scan(text: str) -> list[Finding]:
    found: list[Finding] = []
    opened = _GATES.open(text)
    for i in opened:
        if i == len(_PROVIDER_RE):
            break  # _STATED, below
        kind, pattern = _PROVIDER_RE[i]
        for m in pattern.finditer(text):
            span = m.span("v") if "v" in pattern.groupindex else m.span()
            found.append(Finding(kind, *span, "credentials"))
    for m in _STATED.finditer(text) if len(_PROVIDER_RE) in opened else ():
        v = m.group("v").strip("'\"").rstrip(".!?")
        k = m.group("k").lower()
        if v.lower() in _NOT_A_VALUE or (v.isalpha() and v.islower() and len(v) < 4):
            continue
        digit = any(c.isdigit() for c in v)
        if not k.startswith(("pass", "pwd")) and not (digit or (len(v) >= 16 and not v.isalpha())):
            continue  # a PIN, code or token has digits (or is long and mixed); "the pin was cute" is not one
        start, end = m.span("v")
        end -= len(m.group("v")) - len(m.group("v").rstrip(".!?"))  # a sentence's full stop is not the secret
        found.append(Finding("password", start, end, "credentials"))
    for m in _PHRASE.finditer(text):
        found.append(Finding("seed_phrase", *m.span("v"), "credentials"))
    for m in _LOGIN.finditer(text):
        found.append(Finding("login", *m.span("v"), "credentials"))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        # 13-19 digits passing Luhn; 16 is the common case, other lengths need the word "card" near them
        if luhn_ok(digits) and (len(digits) == 16 or _CARD_CONTEXT.search(text[max(0, m.start() - 40) : m.start()])):
            found.append(Finding("card_number", m.start(), m.end(), "finance"))
    for m in _IBAN.finditer(text):
        if iban_ok(m.group()):
            found.append(Finding("iban", m.start(), m.end(), "finance"))
    for m in _SSN.finditer(text):
        found.append(Finding("national_id", m.start(), m.end(), "identity"))
    for m in _NINO.finditer(text):
        found.append(Finding("national_id", m.start(), m.end(), "identity"))
    for m in _ID_DOC.finditer(text):
        value = m.group("v").rstrip(" -")
        found.append(Finding("id_number", m.start("v"), m.start("v") + len(value), "identity"))
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    merged: list[Finding] = []
    for f in found:
        if merged and f.start < merged[-1].end:
            if f.end > merged[-1].end:  # overlapping finds: one span covering both
                last = merged[-1]
                merged[-1] = Finding(last.kind, last.start, f.end, last.category)
            continue
        merged.append(f)
    return merged


_PROVIDER_RE = [(k, re.compile(p)) for k, p in _PROVIDER]
_GATES = Gates([*(rx for _, rx in _PROVIDER_RE), _STATED])  # skips the patterns a text lacks the words for


# -- keys and sealing ---------------------------------------------------------------------------------------------
def load_key(key_env: str = "ENGRAMDB_SECRETS_KEY", key_file: str | None = None) -> bytes:
    """The 32-byte AES key: base64 (or 64 hex digits) in the environment variable, else the file's content."""
    raw = os.environ.get(key_env)
    where = f"${key_env}"
    if not raw and key_file:
        try:
            raw = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the secrets key file {key_file!r}: {exc.strerror}") from exc
        where = key_file
    if not raw:
        raise ConfigError(
            f"secrets='encrypt' needs a key: set {key_env} to base64 of 32 random bytes, or privacy.key_file "
            "(make one with: python -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())')"
        )
    raw = raw.strip()
    try:
        key = bytes.fromhex(raw) if re.fullmatch(r"[0-9a-fA-F]{64}", raw) else base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ConfigError(f"the secrets key in {where} is not base64 or hex") from exc
    if len(key) != 32:
        raise ConfigError(f"the secrets key in {where} must be 32 bytes (AES-256), got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A short fingerprint naming which key sealed a value (not the key: a one-way hash)."""
    return hashlib.sha256(b"engramdb-secrets:" + key).hexdigest()[:12]


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - the privacy extra is missing
        raise ConfigError("secrets='encrypt' needs the cryptography package: pip install '.[privacy]'") from exc
    return AESGCM(key)


def seal(value: str, key: bytes, aad: bytes = b"") -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _aesgcm(key).encrypt(nonce, value.encode(), aad or None)).decode()


def unseal(token: str, key: bytes, aad: bytes = b"") -> str:
    from cryptography.exceptions import InvalidTag

    blob = base64.b64decode(token)
    try:
        return str(_aesgcm(key).decrypt(blob[:12], blob[12:], aad or None).decode())
    except InvalidTag as exc:
        raise ConfigError("this secret was sealed with another key (or was altered)") from exc


# -- what a write does with them --------------------------------------------------------------------------------
def protect(text: str, mode: str, key: bytes | None = None) -> tuple[str, list[Finding], list[dict[str, str]]]:
    """(text to store, findings, sealed items for metadata["secrets"]). Raises SecretError when mode is refuse."""
    findings = scan(text) if mode != "off" else []
    if not findings:
        return text, [], []
    if mode == "refuse":
        kinds = sorted({f.kind for f in findings})
        raise SecretError(f"refused: the text holds a secret ({', '.join(kinds)}); secrets are never stored in clear")
    out, sealed, last = [], [], 0
    for n, f in enumerate(findings):
        out.append(text[last : f.start])
        if mode == "encrypt":
            if key is None:
                raise ConfigError("secrets='encrypt' needs a key")
            out.append(SEALED.format(n=n))
            sealed.append({"ref": str(n), "kind": f.kind, "ct": seal(text[f.start : f.end], key)})
        else:
            out.append(MASK.format(kind=f.kind))
        last = f.end
    out.append(text[last:])
    return "".join(out), findings, sealed


def reveal(text: str, metadata: dict[str, Any], key: bytes) -> str:
    """The text with its sealed secrets decrypted (for the owner; never done on a read path)."""
    box = metadata.get("secrets") or {}
    items = {str(i["ref"]): i["ct"] for i in box.get("items", [])}
    return _SEALED_RE.sub(lambda m: unseal(items[m.group(1)], key) if m.group(1) in items else m.group(0), text)
