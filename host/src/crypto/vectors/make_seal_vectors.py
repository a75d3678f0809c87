#!/usr/bin/env python3
"""Regenerates seal.txt with an implementation independent of Keyward's
(Python `cryptography`), so the Rust known-answer test pins the on-disk format:
key id = hex(HMAC-SHA256(master, "keyward/v1/key-id"))[:16],
seal key = HKDF-SHA256(master, salt=None, info="keyward/v1/seal"),
aad = "keyward/v1/secret\\0" || be32(len scope) || scope || be32(len name) || name || be64(version).
Run: python3 make_seal_vectors.py > seal.txt
"""
import hashlib, hmac, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes

MASTER = bytes(range(32))

def key_id(master):
    return hmac.new(master, b"keyward/v1/key-id", hashlib.sha256).hexdigest()[:16]

def seal_key(master):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyward/v1/seal").derive(master)

def aad(scope, name, version):
    out = b"keyward/v1/secret\0"
    for part in (scope.encode(), name.encode()):
        out += struct.pack(">I", len(part)) + part
    return out + struct.pack(">q", version)

def seal(master, nonce, plaintext, scope, name, version):
    sealed = AESGCM(seal_key(master)).encrypt(nonce, plaintext, aad(scope, name, version))
    return sealed[:-16], sealed[-16:]

def line(case, kid, scope, name, version, nonce, ct, tag, expect):
    print("|".join([case, kid, scope, name, str(version), nonce.hex(), ct.hex(), tag.hex(), expect]))

print("# case|key_id|scope|name|version|nonce|ciphertext|tag|expected plaintext hex or FAIL")
print(f"# master key = bytes 0..31 (base64 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=), key id {key_id(MASTER)}")
kid = key_id(MASTER)
nonce = bytes(range(100, 112))
pt = b"ghp_example-token-value"
ct, tag = seal(MASTER, nonce, pt, "global", "GITHUB_TOKEN", 1)
line("ok", kid, "global", "GITHUB_TOKEN", 1, nonce, ct, tag, pt.hex())
ct2, tag2 = seal(MASTER, bytes(12), b"\x00\xff binary", "agent_type:coder", "K", 7)
line("ok-binary-scoped", kid, "agent_type:coder", "K", 7, bytes(12), ct2, tag2, b"\x00\xff binary".hex())
flipped = bytes([tag[0] ^ 1]) + tag[1:]
line("flipped-tag", kid, "global", "GITHUB_TOKEN", 1, nonce, ct, flipped, "FAIL")
line("flipped-ciphertext", kid, "global", "GITHUB_TOKEN", 1, nonce, bytes([ct[0] ^ 0x80]) + ct[1:], tag, "FAIL")
line("truncated-tag", kid, "global", "GITHUB_TOKEN", 1, nonce, ct, tag[:15], "FAIL")
line("truncated-ciphertext", kid, "global", "GITHUB_TOKEN", 1, nonce, ct[:-1], tag, "FAIL")
line("other-version", kid, "global", "GITHUB_TOKEN", 2, nonce, ct, tag, "FAIL")
line("other-name", kid, "global", "GITHUB_TOKEN2", 1, nonce, ct, tag, "FAIL")
line("other-scope", kid, "agent_type:coder", "GITHUB_TOKEN", 1, nonce, ct, tag, "FAIL")
line("other-nonce", kid, "global", "GITHUB_TOKEN", 1, bytes(12), ct, tag, "FAIL")
line("unknown-key-id", "0123456789abcdef", "global", "GITHUB_TOKEN", 1, nonce, ct, tag, "FAIL")
ct3, tag3 = seal(bytes(32), nonce, pt, "global", "GITHUB_TOKEN", 1)
line("sealed-by-another-key", kid, "global", "GITHUB_TOKEN", 1, nonce, ct3, tag3, "FAIL")
