// What this machine offers, read once from the system: physical memory. The CPU
// probe (vendor, ISA levels, caches, cores) belongs here too.
#pragma once

#include <cstddef>

namespace hearth {

// Bytes of physical memory (sysconf); 4 GiB when the system does not say.
size_t physical_memory_bytes();

}  // namespace hearth
