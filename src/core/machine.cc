#include "core/machine.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HEARTH_X86 1
#endif

namespace hearth {

size_t physical_memory_bytes() {
  static const size_t bytes = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{1} << 32;
  }();
  return bytes;
}

const char* isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kScalar: return "scalar";
    case IsaLevel::kAvx2: return "avx2";
    case IsaLevel::kAvx512: return "avx512";
  }
  return "?";
}

Result<IsaLevel> parse_isa_level(const std::string& text) {
  std::string t;
  for (char c : text) t += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (t == "scalar" || t == "sse2" || t == "baseline") return IsaLevel::kScalar;
  if (t == "avx2") return IsaLevel::kAvx2;
  if (t == "avx512" || t == "avx512_core" || t == "all") return IsaLevel::kAvx512;
  return invalid_argument("unknown ISA level '", text, "' (expected scalar, avx2 or avx512)");
}

namespace {

#ifdef HEARTH_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}

bool bit(unsigned v, int i) { return (v >> i) & 1u; }

unsigned long long xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

std::string trim(std::string s) {
  const size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return trim(line);
}

// "48K", "1024K", "32M" as in /sys/devices/system/cpu/cpu0/cache/index*/size.
size_t parse_size(const std::string& s) {
  if (s.empty()) return 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (!end) return 0;
  switch (*end) {
    case 'K': return v << 10;
    case 'M': return v << 20;
    case 'G': return v << 30;
    default: return v;
  }
}

void probe_caches(CpuInfo* info) {
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_line(dir + "level"), type = read_line(dir + "type");
    if (level.empty()) break;
    const size_t bytes = parse_size(read_line(dir + "size"));
    if (level == "1" && type == "Data") info->l1d_bytes = bytes;
    else if (level == "2") info->l2_bytes = bytes;
    else if (level == "3") info->l3_bytes = bytes;
  }
  // sysconf as a second source (glibc reads CPUID there).
  if (!info->l1d_bytes) info->l1d_bytes = static_cast<size_t>(std::max(0L, sysconf(_SC_LEVEL1_DCACHE_SIZE)));
  if (!info->l2_bytes) info->l2_bytes = static_cast<size_t>(std::max(0L, sysconf(_SC_LEVEL2_CACHE_SIZE)));
  if (!info->l3_bytes) info->l3_bytes = static_cast<size_t>(std::max(0L, sysconf(_SC_LEVEL3_CACHE_SIZE)));
}

// Cores this process may run on, SMT siblings counted once (by package and core id).
void probe_cores(CpuInfo* info) {
  cpu_set_t set;
  CPU_ZERO(&set);
  int logical = 0;
  std::set<std::pair<std::string, std::string>> cores;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      ++logical;
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::string pkg = read_line(dir + "physical_package_id"), core = read_line(dir + "core_id");
      if (core.empty()) core = "cpu" + std::to_string(cpu);  // no topology: count it alone
      cores.emplace(pkg, core);
    }
  }
  if (logical == 0) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    logical = n > 0 ? static_cast<int>(n) : 1;
  }
  info->logical_cores = logical;
  info->physical_cores = cores.empty() ? logical : static_cast<int>(cores.size());
}

CpuInfo probe() {
  CpuInfo info;
#ifdef HEARTH_X86
  const Regs v = cpuid(0);
  char vendor[13] = {};
  std::copy_n(reinterpret_cast<const char*>(&v.b), 4, vendor);
  std::copy_n(reinterpret_cast<const char*>(&v.d), 4, vendor + 4);
  std::copy_n(reinterpret_cast<const char*>(&v.c), 4, vendor + 8);
  info.vendor = vendor;
  const unsigned max_leaf = v.a;

  const Regs l1 = cpuid(1);
  const unsigned base_family = (l1.a >> 8) & 0xf, base_model = (l1.a >> 4) & 0xf;
  info.family = static_cast<int>(base_family == 0xf ? base_family + ((l1.a >> 20) & 0xff) : base_family);
  info.model = static_cast<int>(base_family == 0x6 || base_family == 0xf ? (((l1.a >> 16) & 0xf) << 4) | base_model
                                                                         : base_model);
  info.stepping = static_cast<int>(l1.a & 0xf);

  // The OS must save the registers: XMM/YMM (XCR0 bits 1, 2), opmask/ZMM (5, 6, 7), AMX tiles (17, 18).
  const bool osxsave = bit(l1.c, 27);
  const unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
  const bool tiles = (xcr0 & 0x60000) == 0x60000;

  info.avx = ymm && bit(l1.c, 28);
  info.fma = info.avx && bit(l1.c, 12);
  info.f16c = info.avx && bit(l1.c, 29);
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    info.avx2 = info.avx && bit(l7.b, 5);
    info.avx512f = zmm && bit(l7.b, 16);
    info.avx512dq = info.avx512f && bit(l7.b, 17);
    info.avx512bw = info.avx512f && bit(l7.b, 30);
    info.avx512vl = info.avx512f && bit(l7.b, 31);
    info.avx512_vnni = info.avx512f && bit(l7.c, 11);
    info.amx_bf16 = tiles && bit(l7.d, 22);
    info.amx_tile = tiles && bit(l7.d, 24);
    info.amx_int8 = tiles && bit(l7.d, 25);
    if (l7.a >= 1) {
      const Regs l71 = cpuid(7, 1);
      info.avx_vnni = info.avx2 && bit(l71.a, 4);
      info.avx512_bf16 = info.avx512f && bit(l71.a, 5);
    }
  }
  const Regs ext = cpuid(0x80000000);
  if (ext.a >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002 + i);
      const unsigned words[4] = {r.a, r.b, r.c, r.d};
      std::copy_n(reinterpret_cast<const char*>(words), 16, brand + 16 * i);
    }
    info.brand = trim(brand);
  }
  if (info.avx2 && info.fma) info.hardware_isa = IsaLevel::kAvx2;
  if (info.hardware_isa == IsaLevel::kAvx2 && info.avx512f && info.avx512bw && info.avx512dq && info.avx512vl)
    info.hardware_isa = IsaLevel::kAvx512;
#endif
  probe_caches(&info);
  probe_cores(&info);
  return info;
}

std::atomic<int> g_cap{static_cast<int>(IsaLevel::kAvx512)};

}  // namespace

std::string CpuInfo::summary() const {
  std::ostringstream out;
  out << (brand.empty() ? "unknown CPU" : brand) << " (" << (vendor.empty() ? "?" : vendor) << " family " << family
      << " model " << model << "), " << physical_cores << " cores / " << logical_cores << " threads, isa "
      << isa_name(hardware_isa);
  const std::pair<bool, const char*> extras[] = {{avx512_vnni, "avx512_vnni"}, {avx512_bf16, "avx512_bf16"},
                                                 {avx_vnni, "avx_vnni"},       {amx_tile, "amx"}};
  for (const auto& [has, name] : extras)
    if (has) out << ' ' << name;
  auto kib = [](size_t b) { return std::to_string(b >> 10) + "K"; };
  out << ", L1d " << kib(l1d_bytes) << " L2 " << kib(l2_bytes) << " L3 " << kib(l3_bytes);
  return out.str();
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = probe();
  return info;
}

bool isa_cap_from_environment(IsaLevel* cap) {
  const char* env = std::getenv("HEARTH_MAX_ISA");
  if (!env || !*env) return false;
  Result<IsaLevel> level = parse_isa_level(env);
  if (!level.ok()) return false;
  *cap = *level;
  return true;
}

IsaLevel isa_level() {
  static const IsaLevel base = [] {
    IsaLevel level = cpu_info().hardware_isa, cap = IsaLevel::kAvx512;
    if (const char* env = std::getenv("HEARTH_MAX_ISA"); env && *env && !isa_cap_from_environment(&cap))
      std::fprintf(stderr, "hearth: ignoring HEARTH_MAX_ISA='%s' (expected scalar, avx2 or avx512)\n", env);
    return static_cast<int>(cap) < static_cast<int>(level) ? cap : level;
  }();
  const int cap = g_cap.load(std::memory_order_relaxed);
  return cap < static_cast<int>(base) ? static_cast<IsaLevel>(cap) : base;
}

void set_isa_cap(IsaLevel cap) { g_cap.store(static_cast<int>(cap), std::memory_order_relaxed); }

}  // namespace hearth
