// The CPU probe against the compiler's own CPUID reading and the kernel's view
// (/proc/cpuinfo), and the ISA cap every hand-written kernel dispatches on.
#include "core/machine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <thread>

namespace hearth {
namespace {

// The flags of the first processor in /proc/cpuinfo.
std::set<std::string> proc_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    const size_t colon = line.find(':');
    std::string word;
    for (size_t i = colon + 1; i <= line.size(); ++i) {
      if (i == line.size() || line[i] == ' ') {
        if (!word.empty()) flags.insert(word);
        word.clear();
      } else {
        word += line[i];
      }
    }
    break;
  }
  return flags;
}

TEST(CpuProbe, AgreesWithTheKernelAndTheCompiler) {
  const CpuInfo& c = cpu_info();
  const std::set<std::string> flags = proc_flags();
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
  EXPECT_EQ(c.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(c.fma, flags.count("fma") == 1);
  EXPECT_EQ(c.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(c.avx512bw, flags.count("avx512bw") == 1);
  EXPECT_EQ(c.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(c.avx512_vnni, flags.count("avx512_vnni") == 1);
  EXPECT_EQ(c.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(c.amx_tile, flags.count("amx_tile") == 1);
  EXPECT_EQ(c.avx2, static_cast<bool>(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(c.avx512f, static_cast<bool>(__builtin_cpu_supports("avx512f")));
  EXPECT_FALSE(c.vendor.empty());
  EXPECT_FALSE(c.brand.empty());
  EXPECT_GT(c.family, 0);
}

TEST(CpuProbe, LevelsFollowTheExtensions) {
  const CpuInfo& c = cpu_info();
  const bool avx512 = c.avx512f && c.avx512bw && c.avx512dq && c.avx512vl;
  const IsaLevel want = c.avx2 && c.fma ? (avx512 ? IsaLevel::kAvx512 : IsaLevel::kAvx2) : IsaLevel::kScalar;
  EXPECT_EQ(c.hardware_isa, want);
  // Each extension needs the one below it.
  EXPECT_TRUE(!c.avx512f || c.avx2);
  EXPECT_TRUE(!c.avx2 || c.avx);
  EXPECT_TRUE(!(c.avx512_bf16 || c.avx512_vnni) || c.avx512f);
}

TEST(CpuProbe, CoresAndCaches) {
  const CpuInfo& c = cpu_info();
  EXPECT_GE(c.logical_cores, c.physical_cores);
  EXPECT_GE(c.physical_cores, 1);
  EXPECT_LE(c.logical_cores, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  // Every x86-64 CPU this runs on has a data cache of at least 16 KiB and an L2 larger than it.
  EXPECT_GE(c.l1d_bytes, size_t{16} << 10);
  EXPECT_GT(c.l2_bytes, c.l1d_bytes);
  const std::string s = c.summary();
  EXPECT_NE(s.find("family " + std::to_string(c.family)), std::string::npos) << s;
  EXPECT_NE(s.find(isa_name(c.hardware_isa)), std::string::npos) << s;
}

TEST(IsaLevelNames, ParseAndPrint) {
  for (IsaLevel l : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    auto back = parse_isa_level(isa_name(l));
    ASSERT_TRUE(back.ok()) << isa_name(l);
    EXPECT_EQ(*back, l);
  }
  EXPECT_EQ(*parse_isa_level("AVX2"), IsaLevel::kAvx2);
  EXPECT_EQ(*parse_isa_level("AVX512_CORE"), IsaLevel::kAvx512);  // oneDNN's spelling
  auto bad = parse_isa_level("avx3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'avx3'"), std::string::npos);
}

TEST(IsaCap, CapsTheLevelAndLifts) {
  const IsaLevel hw = isa_level();
  EXPECT_LE(static_cast<int>(hw), static_cast<int>(cpu_info().hardware_isa));
  set_isa_cap(IsaLevel::kScalar);
  EXPECT_EQ(isa_level(), IsaLevel::kScalar);
  EXPECT_FALSE(isa_at_least(IsaLevel::kAvx2));
  set_isa_cap(IsaLevel::kAvx2);
  EXPECT_EQ(static_cast<int>(isa_level()), std::min(static_cast<int>(hw), 1));
  set_isa_cap(IsaLevel::kAvx512);
  EXPECT_EQ(isa_level(), hw);
}

}  // namespace
}  // namespace hearth
