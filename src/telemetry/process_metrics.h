// Process metrics (CPU, memory, fds, threads, start time) read from /proc/self,
// refreshed by a Registry collector at every render().
#pragma once

#include "telemetry/metrics.h"

namespace hearth::telemetry {

// Registers a collector that refreshes, at the start of every render():
//   hearth_process_cpu_seconds_total         counter (user + system; set via Counter::set_total)
//   hearth_process_resident_memory_bytes     gauge
//   hearth_process_virtual_memory_bytes      gauge
//   hearth_process_open_fds                  gauge
//   hearth_process_threads                   gauge
//   hearth_process_start_time_seconds        gauge (unix time)
// A metric whose /proc file is missing or unreadable is skipped (its series is
// only created once a read succeeds). The collector keeps a reference to
// `registry`, which owns it. Call once per registry.
void register_process_metrics(Registry& registry);

}  // namespace hearth::telemetry
