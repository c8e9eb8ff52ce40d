// libFuzzer target: encrypted model packages. Bytes are opened as a package
// with a fixed test key (header parser, bounds checks, key lookup, MAC check
// and, for inputs that authenticate, decryption and the digest check); then
// the bytes are sealed as a model under that key and must open back to the
// same bytes. Any crash, leak, undefined behaviour or abort is a bug; errors
// are expected and fine.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "security/package.h"

using hearth::security::Key;
using hearth::security::Package;
using hearth::security::SingleKeyResolver;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The seeds in fuzz/corpus/package are sealed with this key (id "fuzz-key", 32 bytes of 0x42).
  static const SingleKeyResolver keys(Key("fuzz-key", std::string(32, '\x42')), "fuzz key");
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)hearth::security::package_key_id(bytes);
  hearth::security::OpenOptions one_thread;
  one_thread.threads = 1;
  (void)hearth::security::open_package(bytes, keys, one_thread);

  // Round trip: seal the input as a model plus an external-data file and open it again.
  Package plain;
  size_t cut = size ? data[0] % (size + 1) : 0;
  plain.files.emplace_back("model.onnx", std::string(bytes.substr(0, cut)));
  plain.files.emplace_back("weights/data.bin", std::string(bytes.substr(cut)));
  hearth::security::SealOptions seal;
  seal.chunk_size = 4096;
  seal.threads = 1;
  auto sealed = hearth::security::seal_package(plain, *keys.find("fuzz-key"), seal);
  if (!sealed.ok()) abort();
  auto opened = hearth::security::open_package(*sealed, keys, one_thread);
  if (!opened.ok() || opened->files.size() != 2 || opened->files[0].data != plain.files[0].data ||
      opened->files[1].data != plain.files[1].data) {
    abort();
  }
  return 0;
}
