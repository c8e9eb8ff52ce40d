// Encrypted model packages: a model and its external-data files sealed with
// SM4-CTR and authenticated with HMAC-SM3 (encrypt-then-MAC) under a key from
// a KeyResolver. The byte layout is documented in docs/SECURITY.md.
//
// Plaintext only ever lives in memory: sealing reads from a Package, opening
// returns one; nothing is written to disk. The payload is processed in chunks
// (1 MiB by default) on several threads, so opening a large model costs about
// as much wall time as reading it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "security/keystore.h"

namespace hearth::security {

inline constexpr std::string_view kPackageMagic = "HEARTHPK";
inline constexpr uint16_t kPackageFormatVersion = 1;
inline constexpr std::string_view kPackageCipherSuite = "SM4-CTR+HMAC-SM3";
inline constexpr size_t kPackageFixedHeaderSize = 24;
inline constexpr size_t kPackageNonceSize = 16;
inline constexpr size_t kPackageTagSize = 32;
inline constexpr uint32_t kDefaultPackageChunkSize = 256u << 10;
inline constexpr uint32_t kMaxPackageFiles = 65536;
inline constexpr size_t kMaxPackageFileNameSize = 4096;
inline constexpr uint32_t kMaxPackageHeaderSize = 64u << 20;

// One file of a package, in memory. Its data is cleansed on destruction.
struct PackageFile {
  std::string name;  // relative, '/'-separated, no "." or ".." components
  std::string data;

  PackageFile() = default;
  PackageFile(std::string name_, std::string data_) : name(std::move(name_)), data(std::move(data_)) {}
  PackageFile(const PackageFile&) = default;
  PackageFile(PackageFile&&) noexcept = default;
  PackageFile& operator=(const PackageFile&) = default;
  PackageFile& operator=(PackageFile&&) noexcept = default;
  ~PackageFile();
};

// A model and its external-data files; files[0] is the model.
struct Package {
  std::string key_id;
  std::vector<PackageFile> files;
};

struct PackageFileEntry {
  std::string name;
  uint64_t size = 0;
};

// The clear-text header, parsed and bounds-checked (not yet authenticated).
struct PackageHeader {
  uint16_t version = 0;
  std::string key_id;
  std::string cipher_suite;
  uint32_t chunk_size = 0;
  std::string nonce;             // 16 bytes
  std::string plaintext_digest;  // 32 bytes, see docs/SECURITY.md
  std::vector<PackageFileEntry> files;
  uint64_t header_size = 0;   // bytes from the magic to the end of the file table
  uint64_t payload_size = 0;  // ciphertext bytes (sum of file sizes)
};

struct SealOptions {
  uint32_t chunk_size = kDefaultPackageChunkSize;  // power of two, 4 KiB..64 MiB (default 256 KiB)
  int threads = 0;                                 // 0: one per core, at most 16
};

struct OpenOptions {
  int threads = 0;  // 0: one per core, at most 16
  // Also recompute the SM3 digest of the plaintext and compare it with the
  // header's. The HMAC already authenticates the header and every ciphertext
  // byte, so this only catches a package whose sealer (a key holder) wrote a
  // wrong digest; `hearth decrypt -o` checks it, the server's load does not.
  bool check_plaintext_digest = true;
};

// Relative names only: no absolute paths, no "." or ".." components, no
// backslashes, control characters or empty components.
Status validate_package_file_name(std::string_view name);

// Encrypts and authenticates `plain` under `key` (plain.key_id, when set, must
// equal key.id). Returns the package bytes to write.
Result<std::string> seal_package(const Package& plain, const Key& key, const SealOptions& options = {});

// Parses the header, finds the key, and in one pass per group of chunks
// computes the chunk MACs and decrypts in memory; the plaintext is returned
// only when the tag over header and all chunk MACs verifies (else it is
// wiped), and, with check_plaintext_digest, when the plaintext digest matches.
// Any bytes give either a Package or a Status that names the problem; never a
// crash.
Result<Package> open_package(std::string_view bytes, const KeyResolver& keys, const OpenOptions& options = {});

// A package opened in place: the file names, and views of the plaintext,
// which now sits where the ciphertext was in the caller's buffer (the buffer
// must outlive the views; cleanse it when done). Avoids allocating and
// faulting in a second copy of a large model. Same checks as open_package; on
// failure the buffer may hold partly decrypted (unauthenticated) bytes, which
// are wiped.
struct PackageView {
  std::string key_id;
  std::vector<std::pair<std::string, std::string_view>> files;  // files[0] is the model
};
Result<PackageView> open_package_in_place(char* data, size_t size, const KeyResolver& keys,
                                          const OpenOptions& options = {});

// The header alone (no key needed); checks structure and sizes, not the tag.
Result<PackageHeader> parse_package_header(std::string_view bytes);
Result<std::string> package_key_id(std::string_view bytes);

}  // namespace hearth::security
