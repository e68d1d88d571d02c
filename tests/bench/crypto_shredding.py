"""What crypto-shredding the bus would cost per record, beside what the gateway and loader spend per record now.

Crypto-shredding (one key per subject; the personal part of every record on the bus encrypted under it; erasure
deletes the key) was weighed against time-bounded retention (docs/privacy.md). This measures its best case: every
subject's key already in memory (no key-store round trip, no key creation), AES-256-GCM from ``cryptography``
(OpenSSL) over the record's payload, the way the gateway would encrypt before publishing and the loader decrypt
before storing. Prints microseconds per record for each side and the share of the per-record CPU the ingestion
benchmarks measured (docs/benchmarks.md: gateway 76k-86k events/s in one process, loader 140k-166k rows/s).

    python -m tests.bench.crypto_shredding [--records N] [--subjects M]
"""

from __future__ import annotations

import argparse
import os
import time

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GATEWAY_EVENTS_PER_S = 80_000  # the middle of the measured one-process range
LOADER_ROWS_PER_S = 150_000


def _payload(user: int, n: int) -> bytes:
    """A CleverTap event's personal part as the gateway holds it: identity, email and free-form properties."""
    return orjson.dumps(
        {
            "identity": f"user-{user}",
            "email": f"user-{user}@example.com",
            "evtName": "Product Viewed",
            "evtData": {"Product name": f"Casio Chronograph {n}", "Category": "Mens Watch", "Price": 59.99},
            "profileData": {"Name": f"User {user}", "Phone": f"+4915100{user:06d}", "Tz": "Europe/Berlin"},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--subjects", type=int, default=20_000)
    args = parser.parse_args()
    keys = {user: AESGCM(AESGCM.generate_key(bit_length=256)) for user in range(args.subjects)}
    records = [(n % args.subjects, _payload(n % args.subjects, n)) for n in range(args.records)]
    size = sum(len(payload) for _, payload in records) / len(records)

    started = time.perf_counter()
    sealed = []
    for user, payload in records:
        nonce = os.urandom(12)
        sealed.append((user, nonce, keys[user].encrypt(nonce, payload, b"ACC-1")))
    encrypt_us = (time.perf_counter() - started) / len(records) * 1e6

    started = time.perf_counter()
    for user, nonce, ciphertext in sealed:
        keys[user].decrypt(nonce, ciphertext, b"ACC-1")
    decrypt_us = (time.perf_counter() - started) / len(records) * 1e6

    gateway_us = 1e6 / GATEWAY_EVENTS_PER_S
    loader_us = 1e6 / LOADER_ROWS_PER_S
    print(f"{len(records)} records of {size:.0f} bytes over {args.subjects} subjects, keys in memory")
    print(
        f"encrypt (gateway): {encrypt_us:.2f} us/record = {encrypt_us / gateway_us:.0%} of its {gateway_us:.1f} us"
    )
    print(
        f"decrypt (loader):  {decrypt_us:.2f} us/record = {decrypt_us / loader_us:.0%} of its {loader_us:.1f} us"
    )


if __name__ == "__main__":
    main()
