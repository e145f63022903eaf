// Content hashes for artifacts that must match bit for bit across machines.
//
// Rotation matrices, codebooks and plans are named by the SHA-256 of their exact
// bytes, so a consumer can verify that what it decodes with is what the producer
// encoded with. OpenSSL provides the digest; this file only fixes the spelling
// (lowercase hex) so that every component compares the same strings.
//
// Example:
//   Sha256Hex("abc");
//   // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#ifndef KVPLAN_CORE_DIGEST_H_
#define KVPLAN_CORE_DIGEST_H_

#include <string>
#include <string_view>

namespace kvplan {

// Lowercase hex SHA-256 of `bytes` (64 characters). Thread-safe. Returns an empty
// string only if OpenSSL itself fails (allocation failure inside the library),
// which no valid hash equals, so a comparison against it fails closed.
std::string Sha256Hex(std::string_view bytes);

}  // namespace kvplan

#endif  // KVPLAN_CORE_DIGEST_H_
