// JSON documents of the KServe v2 REST API and Triton's extensions, written
// with RapidJSON: server and model metadata, model configuration, statistics,
// repository index.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "serving/server.h"

namespace hearth::frontend {

std::string server_metadata_json(const serving::ServerMetadata& m);
std::string model_metadata_json(const serving::ModelMetadata& m);
// Triton's JSON form of ModelConfig: proto field names, enums as names,
// 64-bit integers as JSON numbers.
Result<std::string> model_config_json(const inference::ModelConfig& config);
// {"model_stats": [...]} as Triton's statistics extension.
std::string model_statistics_json(const std::vector<serving::ModelStatistics>& stats);
// [{"name","version","state","reason"}, ...]
std::string repository_index_json(const std::vector<serving::ModelIndexEntry>& index);

}  // namespace hearth::frontend
