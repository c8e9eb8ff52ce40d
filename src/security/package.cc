// Encrypted model packages: header codec, key derivation, chunked
// SM4-CTR + HMAC-SM3 sealing and opening (see package.h, docs/SECURITY.md).
#include "security/package.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <set>
#include <thread>

#include "security/crypto.h"
#include "security/sm3_fast.h"

namespace hearth::security {

namespace {

constexpr std::string_view kEncKeyInfo = "hearth package v1 SM4-CTR key";
constexpr std::string_view kMacKeyInfo = "hearth package v1 HMAC-SM3 key";
constexpr std::string_view kChunkMacKeyInfo = "hearth package v1 chunk HMAC-SM3 key";
constexpr size_t kGroup = sm3::kLanes;  // chunks hashed together by the multi-lane SM3
constexpr std::string_view kDigestLabel = "hearth package v1 plaintext SM3";
constexpr uint32_t kMinChunkSize = 4096;
constexpr uint32_t kMaxChunkSize = 64u << 20;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Bounds-checked little-endian reader over [pos, end).
struct Reader {
  std::string_view bytes;
  size_t pos = 0;
  size_t end = 0;

  bool has(size_t n) const { return pos <= end && n <= end - pos; }
  bool u(int width, uint64_t& v) {
    if (!has(static_cast<size_t>(width))) return false;
    v = 0;
    for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
    pos += static_cast<size_t>(width);
    return true;
  }
  bool str(size_t n, std::string& s) {
    if (!has(n)) return false;
    s.assign(bytes.substr(pos, n));
    pos += n;
    return true;
  }
};

Status truncated(uint64_t want, size_t have) {
  return data_loss("truncated package: header says ", want, " bytes, file has ", have);
}

// Encryption and MAC keys for one package, derived from the stored secret and
// the package nonce with HKDF-SM3; cleansed when dropped.
struct PackageKeys {
  std::string enc;
  std::string mac;
  std::string chunk_mac;
  sm3::HmacKey chunk{};
  ~PackageKeys() {
    cleanse(enc);
    cleanse(mac);
    cleanse(chunk_mac);
    cleanse(&chunk, sizeof(chunk));
  }
};

Result<PackageKeys> derive_keys(const Key& key, std::string_view nonce) {
  if (key.type != KeyType::kSm4)
    return invalid_argument("key '", key.id, "' is an SM2 signing key; packages are encrypted with SM4 keys");
  if (key.secret.size() != kKeySecretSize) {
    return invalid_argument("key '", key.id, "' has a ", key.secret.size(), "-byte secret, expected ", kKeySecretSize);
  }
  PackageKeys k;
  HEARTH_ASSIGN_OR_RETURN(k.enc, hkdf_sm3(key.secret, nonce, kEncKeyInfo, kSm4KeySize));
  HEARTH_ASSIGN_OR_RETURN(k.mac, hkdf_sm3(key.secret, nonce, kMacKeyInfo, kSm3Size));
  HEARTH_ASSIGN_OR_RETURN(k.chunk_mac, hkdf_sm3(key.secret, nonce, kChunkMacKeyInfo, kSm3Size));
  sm3::hmac_key(reinterpret_cast<const uint8_t*>(k.chunk_mac.data()), k.chunk_mac.size(), k.chunk);
  return k;
}

// Payload offsets where each file starts (size files+1, last = payload size).
std::vector<uint64_t> file_offsets(const std::vector<uint64_t>& sizes) {
  std::vector<uint64_t> off{0};
  for (uint64_t s : sizes) off.push_back(off.back() + s);
  return off;
}

// Calls fn(file index, offset in file, length) for the files covering payload [a, b).
template <typename Fn>
Status for_each_segment(const std::vector<uint64_t>& off, uint64_t a, uint64_t b, Fn fn) {
  size_t f = static_cast<size_t>(std::upper_bound(off.begin(), off.end(), a) - off.begin()) - 1;
  while (a < b && f + 1 < off.size()) {
    uint64_t stop = std::min(b, off[f + 1]);
    if (stop > a) HEARTH_RETURN_IF_ERROR(fn(f, a - off[f], stop - a));
    a = stop;
    ++f;
  }
  return ok_status();
}

int thread_count(int requested, size_t work) {
  size_t n = requested > 0 ? static_cast<size_t>(requested) : std::min<size_t>(std::thread::hardware_concurrency(), 16);
  return static_cast<int>(std::max<size_t>(1, std::min(n, work)));
}

// Runs fn(i) for i in [0, n) on `threads` threads; returns the first error.
template <typename Fn>
Status parallel_for(size_t n, int threads, Fn fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<Status> errors(static_cast<size_t>(threads));
  auto work = [&](size_t t) {
    for (size_t i; !failed && (i = next.fetch_add(1)) < n;) {
      Status s;
      try {
        s = fn(i);
      } catch (const std::exception& e) {  // bad_alloc: never let it end the process from a worker
        s = resource_exhausted("package chunk ", i, ": ", e.what());
      }
      if (!s.ok()) {
        errors[t] = s;
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  try {
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, static_cast<size_t>(t));
  } catch (const std::exception&) {
    // No more threads available: the ones started and this one finish the work.
  }
  work(0);
  for (auto& th : pool) th.join();
  for (const Status& s : errors) HEARTH_RETURN_IF_ERROR(s);
  return ok_status();
}

// Byte range [begin, end) of chunk i in the payload.
struct ChunkRange {
  uint64_t begin;
  uint64_t end;
};
ChunkRange chunk_range(const PackageHeader& h, size_t i) {
  uint64_t a = i * uint64_t{h.chunk_size};
  return {a, std::min(h.payload_size, a + h.chunk_size)};
}

// Chunk indices [first, last) of group g; `full` when all kGroup chunks have the full chunk size.
struct ChunkGroup {
  size_t first;
  size_t last;
  bool full;
};
ChunkGroup chunk_group(const PackageHeader& h, size_t chunks, size_t g) {
  size_t first = g * kGroup, last = std::min(chunks, first + kGroup);
  ChunkRange r = chunk_range(h, last - 1);
  return {first, last, last - first == kGroup && r.end - r.begin == h.chunk_size};
}

size_t group_count(size_t chunks) { return (chunks + kGroup - 1) / kGroup; }

std::string digest_string(const uint8_t d[32]) { return std::string(reinterpret_cast<const char*>(d), 32); }

// t_i = HMAC-SM3(chunk_mac_key, ciphertext chunk i) for the chunks of group g.
void chunk_tags(const PackageKeys& k, const PackageHeader& h, const char* cipher, size_t chunks, size_t g,
                std::vector<std::string>& tags) {
  ChunkGroup grp = chunk_group(h, chunks, g);
  uint8_t out[kGroup][32];
  if (grp.full) {
    const uint8_t* ptrs[kGroup];
    for (size_t i = 0; i < kGroup; ++i) {
      ptrs[i] = reinterpret_cast<const uint8_t*>(cipher + chunk_range(h, grp.first + i).begin);
    }
    sm3::hmac_x8(k.chunk, ptrs, h.chunk_size, out);
    for (size_t i = 0; i < kGroup; ++i) tags[grp.first + i] = digest_string(out[i]);
    return;
  }
  for (size_t c = grp.first; c < grp.last; ++c) {
    ChunkRange r = chunk_range(h, c);
    sm3::hmac(k.chunk, reinterpret_cast<const uint8_t*>(cipher + r.begin), r.end - r.begin, out[0]);
    tags[c] = digest_string(out[0]);
  }
}

// d_i = SM3(plaintext chunk i) for the chunks of group g; file_data(f) is file f's bytes.
template <typename FileData>
Status chunk_digests(const PackageHeader& h, const std::vector<uint64_t>& off, size_t chunks, size_t g,
                     FileData file_data, std::vector<std::string>& digests) {
  ChunkGroup grp = chunk_group(h, chunks, g);
  // Where a chunk lies inside one file its plaintext is contiguous: hash eight at once.
  const uint8_t* ptrs[kGroup] = {};
  bool all_contiguous = grp.full;
  for (size_t c = grp.first; all_contiguous && c < grp.last; ++c) {
    ChunkRange r = chunk_range(h, c);
    size_t f = static_cast<size_t>(std::upper_bound(off.begin(), off.end(), r.begin) - off.begin()) - 1;
    all_contiguous = f + 1 < off.size() && r.end <= off[f + 1];
    if (all_contiguous) ptrs[c - grp.first] = reinterpret_cast<const uint8_t*>(file_data(f) + (r.begin - off[f]));
  }
  if (all_contiguous) {
    uint32_t iv[8];
    sm3::init(iv);
    uint8_t out[kGroup][32];
    sm3::finish_x8(iv, 0, ptrs, h.chunk_size, out);
    for (size_t i = 0; i < kGroup; ++i) digests[grp.first + i] = digest_string(out[i]);
    return ok_status();
  }
  for (size_t c = grp.first; c < grp.last; ++c) {
    ChunkRange r = chunk_range(h, c);
    Sm3 d;
    HEARTH_RETURN_IF_ERROR(for_each_segment(off, r.begin, r.end, [&](size_t f, uint64_t at, uint64_t n) {
      return d.update(file_data(f) + at, n);
    }));
    HEARTH_ASSIGN_OR_RETURN(digests[c], d.final());
  }
  return ok_status();
}

// Applies SM4-CTR to chunk c: payload bytes from `src(f, at)` / `dst(f, at)` or the contiguous buffer.
Status crypt_chunk(const PackageKeys& k, const PackageHeader& h, const std::vector<uint64_t>& off, size_t c,
                   const std::function<Status(Sm4Ctr&, size_t, uint64_t, uint64_t, uint64_t)>& segment) {
  ChunkRange r = chunk_range(h, c);
  Sm4Ctr ctr(k.enc, add_counter(h.nonce, r.begin / kSm4BlockSize));
  uint64_t done = 0;
  return for_each_segment(off, r.begin, r.end, [&](size_t f, uint64_t at, uint64_t n) {
    Status s = segment(ctr, f, at, n, r.begin + done);
    done += n;
    return s;
  });
}

// The package tag: HMAC(mac, header || chunk tags...).
Result<std::string> package_tag(const std::string& mac_key, std::string_view header,
                                const std::vector<std::string>& chunk_tags) {
  HmacSm3 h(mac_key);
  HEARTH_RETURN_IF_ERROR(h.update(header.data(), header.size()));
  for (const auto& t : chunk_tags) HEARTH_RETURN_IF_ERROR(h.update(t.data(), t.size()));
  return h.final();
}

// The plaintext digest: SM3(label || u64 payload size || u32 chunk size || SM3 of each plaintext chunk).
Result<std::string> plaintext_digest(uint64_t payload, uint32_t chunk, const std::vector<std::string>& chunk_digests) {
  Sm3 h;
  std::string prefix(kDigestLabel);
  put_le(prefix, payload, 8);
  put_le(prefix, chunk, 4);
  HEARTH_RETURN_IF_ERROR(h.update(prefix.data(), prefix.size()));
  for (const auto& d : chunk_digests) HEARTH_RETURN_IF_ERROR(h.update(d.data(), d.size()));
  return h.final();
}

std::string serialize_header(const PackageHeader& h) {
  std::string out(kPackageMagic);
  put_le(out, h.version, 2);
  put_le(out, 0, 2);  // flags
  put_le(out, h.header_size, 4);
  put_le(out, h.payload_size, 8);
  put_le(out, h.key_id.size(), 1);
  out += h.key_id;
  put_le(out, h.cipher_suite.size(), 1);
  out += h.cipher_suite;
  put_le(out, h.chunk_size, 4);
  out += h.nonce;
  out += h.plaintext_digest;
  put_le(out, h.files.size(), 4);
  for (const auto& f : h.files) {
    put_le(out, f.name.size(), 2);
    out += f.name;
    put_le(out, f.size, 8);
  }
  return out;
}

size_t chunk_count(const PackageHeader& h) {
  return static_cast<size_t>((h.payload_size + h.chunk_size - 1) / h.chunk_size);
}

// Checks the sealing input and returns the header without digest.
Result<PackageHeader> plan_header(const Package& plain, const Key& key, const SealOptions& options) {
  HEARTH_RETURN_IF_ERROR(validate_key_id(key.id));
  if (!plain.key_id.empty() && plain.key_id != key.id) {
    return invalid_argument("package names key '", plain.key_id, "' but key '", key.id, "' was given");
  }
  if (plain.files.empty()) return invalid_argument("a package needs at least one file (the model)");
  if (plain.files.size() > kMaxPackageFiles) {
    return invalid_argument("a package holds at most ", kMaxPackageFiles, " files, got ", plain.files.size());
  }
  uint32_t cs = options.chunk_size;
  if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0) {
    return invalid_argument("chunk size ", cs, " is not a power of two between 4 KiB and 64 MiB");
  }
  PackageHeader h;
  h.version = kPackageFormatVersion;
  h.key_id = key.id;
  h.cipher_suite = std::string(kPackageCipherSuite);
  h.chunk_size = cs;
  HEARTH_ASSIGN_OR_RETURN(h.nonce, random_bytes(kPackageNonceSize));
  h.plaintext_digest.assign(kSm3Size, '\0');
  std::set<std::string_view> names;
  for (const auto& f : plain.files) {
    HEARTH_RETURN_IF_ERROR(validate_package_file_name(f.name));
    if (!names.insert(f.name).second) return invalid_argument("file '", f.name, "' appears twice in the package");
    h.files.push_back({f.name, f.data.size()});
    h.payload_size += f.data.size();
  }
  h.header_size = serialize_header(h).size();
  if (h.header_size > kMaxPackageHeaderSize) return invalid_argument("the package file table is too large");
  return h;
}

// Parses the variable part of the header: [24, header_size).
Status parse_header_fields(std::string_view bytes, PackageHeader& h) {
  Reader r{bytes, kPackageFixedHeaderSize, static_cast<size_t>(h.header_size)};
  auto cut = [&](const char* what) {
    return data_loss("corrupt package header: ", what, " runs past the header end (", h.header_size, " bytes)");
  };
  uint64_t n = 0;
  if (!r.u(1, n) || !r.str(n, h.key_id)) return cut("key id");
  if (Status s = validate_key_id(h.key_id); !s.ok()) return data_loss("corrupt package header: ", s.message());
  if (!r.u(1, n) || !r.str(n, h.cipher_suite)) return cut("cipher suite");
  if (h.cipher_suite != kPackageCipherSuite) {
    return unimplemented("cipher suite '", h.cipher_suite, "' is not supported (this build reads ", kPackageCipherSuite,
                         ")");
  }
  if (!r.u(4, n)) return cut("chunk size");
  h.chunk_size = static_cast<uint32_t>(n);
  if (n < kMinChunkSize || n > kMaxChunkSize || (n & (n - 1)) != 0) {
    return data_loss("corrupt package header: chunk size ", n, " is not a power of two between 4 KiB and 64 MiB");
  }
  if (!r.str(kPackageNonceSize, h.nonce)) return cut("nonce");
  if (!r.str(kSm3Size, h.plaintext_digest)) return cut("plaintext digest");
  uint64_t count = 0;
  if (!r.u(4, count)) return cut("file count");
  if (count == 0 || count > kMaxPackageFiles) {
    return data_loss("corrupt package header: file count ", count, " is not between 1 and ", kMaxPackageFiles);
  }
  std::set<std::string> names;
  uint64_t sum = 0;
  for (uint64_t i = 0; i < count; ++i) {
    PackageFileEntry e;
    if (!r.u(2, n) || !r.str(n, e.name) || !r.u(8, e.size)) return cut(str_cat("file table entry ", i).c_str());
    if (Status s = validate_package_file_name(e.name); !s.ok()) return data_loss("package file ", i, ": ", s.message());
    if (!names.insert(e.name).second) return data_loss("package file '", e.name, "' appears twice");
    if (e.size > h.payload_size - sum) {
      return data_loss("corrupt package header: file sizes add up to more than the payload (", h.payload_size, " bytes)");
    }
    sum += e.size;
    h.files.push_back(std::move(e));
  }
  if (sum != h.payload_size) {
    return data_loss("corrupt package header: file sizes add up to ", sum, " bytes, payload is ", h.payload_size);
  }
  if (r.pos != h.header_size) {
    return data_loss("corrupt package header: fields end at byte ", r.pos, " but header length is ", h.header_size);
  }
  return ok_status();
}

std::vector<uint64_t> entry_sizes(const PackageHeader& h) {
  std::vector<uint64_t> sizes;
  for (const auto& f : h.files) sizes.push_back(f.size);
  return sizes;
}

}  // namespace

PackageFile::~PackageFile() { cleanse(data); }

Status validate_package_file_name(std::string_view name) {
  if (name.empty()) return invalid_argument("empty file name");
  if (name.size() > kMaxPackageFileNameSize) return invalid_argument("file name longer than ", kMaxPackageFileNameSize);
  if (name.front() == '/') return invalid_argument("file name '", name, "' is an absolute path");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      return invalid_argument("file name '", name, "' holds a backslash or control character");
    }
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") {
      return invalid_argument("file name '", name, "' has an empty, '.' or '..' component (path traversal)");
    }
    start = slash + 1;
  }
  return ok_status();
}

Result<PackageHeader> parse_package_header(std::string_view bytes) {
  size_t m = std::min(bytes.size(), kPackageMagic.size());
  if (bytes.substr(0, m) != kPackageMagic.substr(0, m)) return invalid_argument("not a Hearth package (bad magic)");
  if (bytes.size() < 10) return truncated(kPackageFixedHeaderSize, bytes.size());
  PackageHeader h;
  Reader r{bytes, kPackageMagic.size(), bytes.size()};
  uint64_t v = 0, flags = 0, hsize = 0;
  r.u(2, v);
  if (v != kPackageFormatVersion) {
    return unimplemented("format version ", v, " is not supported (this build reads version ", kPackageFormatVersion,
                         ")");
  }
  h.version = static_cast<uint16_t>(v);
  if (!r.u(2, flags) || !r.u(4, hsize) || !r.u(8, h.payload_size)) {
    return truncated(kPackageFixedHeaderSize, bytes.size());
  }
  if (flags != 0) return unimplemented("package header flags ", flags, " are not supported");
  if (hsize < kPackageFixedHeaderSize || hsize > kMaxPackageHeaderSize) {
    return data_loss("corrupt package header: header length ", hsize, " is out of range");
  }
  h.header_size = hsize;
  if (h.payload_size > UINT64_MAX - hsize - kPackageTagSize) {
    return data_loss("corrupt package header: payload length ", h.payload_size, " is impossible");
  }
  uint64_t total = hsize + h.payload_size + kPackageTagSize;
  if (total > bytes.size()) return truncated(total, bytes.size());
  if (total < bytes.size()) {
    return data_loss("package has ", bytes.size(), " bytes but its header says ", total, " (trailing data)");
  }
  HEARTH_RETURN_IF_ERROR(parse_header_fields(bytes, h));
  return h;
}

Result<std::string> package_key_id(std::string_view bytes) {
  HEARTH_ASSIGN_OR_RETURN(PackageHeader h, parse_package_header(bytes));
  return h.key_id;
}

Result<std::string> seal_package(const Package& plain, const Key& key, const SealOptions& options) {
  HEARTH_ASSIGN_OR_RETURN(PackageHeader h, plan_header(plain, key, options));
  HEARTH_ASSIGN_OR_RETURN(PackageKeys keys, derive_keys(key, h.nonce));
  const uint64_t hs = h.header_size, ps = h.payload_size;
  if (ps > SIZE_MAX - hs - kPackageTagSize) return resource_exhausted("package too large for memory");
  std::string out;
  try {
    out.resize(static_cast<size_t>(hs + ps));
  } catch (const std::exception&) {
    return resource_exhausted("not enough memory to seal a ", ps, "-byte package");
  }
  char* cipher = out.data() + hs;
  const std::vector<uint64_t> off = file_offsets(entry_sizes(h));
  const size_t chunks = chunk_count(h), groups = group_count(chunks);
  std::vector<std::string> digests(chunks), tags(chunks);
  auto file_data = [&](size_t f) { return plain.files[f].data.data(); };
  HEARTH_RETURN_IF_ERROR(parallel_for(groups, thread_count(options.threads, groups), [&](size_t g) -> Status {
    ChunkGroup grp = chunk_group(h, chunks, g);
    for (size_t c = grp.first; c < grp.last; ++c) {
      HEARTH_RETURN_IF_ERROR(crypt_chunk(keys, h, off, c, [&](Sm4Ctr& ctr, size_t f, uint64_t at, uint64_t n,
                                                              uint64_t pos) {
        return ctr.apply(file_data(f) + at, cipher + pos, n);
      }));
    }
    HEARTH_RETURN_IF_ERROR(chunk_digests(h, off, chunks, g, file_data, digests));
    chunk_tags(keys, h, cipher, chunks, g, tags);
    return ok_status();
  }));
  HEARTH_ASSIGN_OR_RETURN(h.plaintext_digest, plaintext_digest(ps, h.chunk_size, digests));
  std::string header = serialize_header(h);
  if (header.size() != hs) return internal_error("package header size changed while sealing");
  std::copy(header.begin(), header.end(), out.begin());
  HEARTH_ASSIGN_OR_RETURN(std::string tag, package_tag(keys.mac, header, tags));
  out += tag;
  return out;
}

namespace {

// What opening decided: the file table, or why not.
struct Opened {
  std::string key_id;
  std::vector<PackageFileEntry> files;
};

// Authenticates and decrypts `bytes`; file f's plaintext goes to
// plain(f, entry) (a writable buffer of the entry's size, chosen by the caller:
// fresh memory, or the ciphertext itself for an in-place open). One pass per
// group of chunks: its MAC and its decryption run while the ciphertext is in
// cache. On a bad tag the plaintext is wiped before returning.
template <typename Plain>
Result<Opened> open_into(std::string_view bytes, const KeyResolver& keys, const OpenOptions& options, Plain plain) {
  HEARTH_ASSIGN_OR_RETURN(PackageHeader h, parse_package_header(bytes));
  HEARTH_ASSIGN_OR_RETURN(Key key, keys.find(h.key_id));
  HEARTH_ASSIGN_OR_RETURN(PackageKeys pk, derive_keys(key, h.nonce));
  const uint64_t hs = h.header_size, ps = h.payload_size;
  const char* cipher = bytes.data() + hs;
  const size_t chunks = chunk_count(h), groups = group_count(chunks);
  const int threads = thread_count(options.threads, groups);
  std::vector<char*> dst;
  for (size_t f = 0; f < h.files.size(); ++f) {
    char* p = plain(f);
    if (p == nullptr) return resource_exhausted("not enough memory to decrypt a ", ps, "-byte package");
    dst.push_back(p);
  }
  const std::vector<uint64_t> off = file_offsets(entry_sizes(h));
  std::vector<std::string> tags(chunks), digests(options.check_plaintext_digest ? chunks : 0);
  auto file_data = [&](size_t f) { return dst[f]; };
  auto wipe = [&] {
    for (size_t f = 0; f < dst.size(); ++f) cleanse(dst[f], static_cast<size_t>(h.files[f].size));
  };
  Status pass = parallel_for(groups, threads, [&](size_t g) -> Status {
    chunk_tags(pk, h, cipher, chunks, g, tags);  // before an in-place decryption overwrites the chunks
    ChunkGroup grp = chunk_group(h, chunks, g);
    for (size_t c = grp.first; c < grp.last; ++c) {
      HEARTH_RETURN_IF_ERROR(crypt_chunk(pk, h, off, c, [&](Sm4Ctr& ctr, size_t f, uint64_t at, uint64_t n,
                                                            uint64_t pos) {
        return ctr.apply(cipher + pos, file_data(f) + at, n);
      }));
    }
    if (!options.check_plaintext_digest) return ok_status();
    return chunk_digests(h, off, chunks, g, file_data, digests);
  });
  if (!pass.ok()) {
    wipe();
    return pass;
  }
  HEARTH_ASSIGN_OR_RETURN(std::string tag, package_tag(pk.mac, bytes.substr(0, hs), tags));
  if (!equal_constant_time(tag, bytes.substr(hs + ps, kPackageTagSize))) {
    wipe();
    return Status(StatusCode::kUnauthenticated, "authentication failed: wrong key or tampered package");
  }
  if (options.check_plaintext_digest) {
    HEARTH_ASSIGN_OR_RETURN(std::string digest, plaintext_digest(ps, h.chunk_size, digests));
    if (!equal_constant_time(digest, h.plaintext_digest)) {
      wipe();
      return data_loss("plaintext digest mismatch");
    }
  }
  return Opened{h.key_id, h.files};
}

}  // namespace

Result<Package> open_package(std::string_view bytes, const KeyResolver& keys, const OpenOptions& options) {
  Package out;
  HEARTH_ASSIGN_OR_RETURN(PackageHeader h, parse_package_header(bytes));
  try {
    for (const auto& e : h.files) out.files.emplace_back(e.name, std::string(static_cast<size_t>(e.size), '\0'));
  } catch (const std::exception&) {
    return resource_exhausted("not enough memory to decrypt a ", h.payload_size, "-byte package");
  }
  HEARTH_ASSIGN_OR_RETURN(Opened opened,
                          open_into(bytes, keys, options, [&](size_t f) { return out.files[f].data.data(); }));
  out.key_id = std::move(opened.key_id);
  return out;
}

Result<PackageView> open_package_in_place(char* data, size_t size, const KeyResolver& keys,
                                          const OpenOptions& options) {
  std::string_view bytes(data, size);
  HEARTH_ASSIGN_OR_RETURN(PackageHeader h, parse_package_header(bytes));
  const std::vector<uint64_t> off = file_offsets(entry_sizes(h));
  char* payload = data + h.header_size;
  HEARTH_ASSIGN_OR_RETURN(Opened opened, open_into(bytes, keys, options, [&](size_t f) { return payload + off[f]; }));
  PackageView view;
  view.key_id = std::move(opened.key_id);
  for (size_t f = 0; f < opened.files.size(); ++f)
    view.files.emplace_back(opened.files[f].name, std::string_view(payload + off[f], opened.files[f].size));
  return view;
}

}  // namespace hearth::security
