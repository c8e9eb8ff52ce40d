// Model configuration: Triton's config.pbtxt (protobuf text format, the subset
// in proto/model_config.proto), read from <model>/config.pbtxt or derived from
// the model when that file is absent, then completed and checked against the
// loaded model so the scheduler and front ends can trust it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"
#include "runtime/session.h"

namespace hearth::repository {

inline constexpr const char* kPlatform = "onnxruntime_onnx";
inline constexpr const char* kDefaultModelFilename = "model.onnx";

// Parses config.pbtxt text. Errors (syntax, unknown field, bad enum value)
// name `file` with line and column: "mlp/config.pbtxt:3:1: ... 'foo' ...".
Result<inference::ModelConfig> parse_model_config(const std::string& text, const std::string& file);

// Checks the fields that do not need the model: name equals `model_name` (or
// is empty), platform/backend are ONNX ones, max_batch_size >= 0,
// dynamic batching only with max_batch_size > 0 and preferred sizes within
// it, queue policy REJECT, instance kinds CPU/AUTO/MODEL, version policy sane.
Status check_model_config(const inference::ModelConfig& config, const std::string& model_name,
                          const std::string& file);

// Versions to serve out of `available` (ascending or not) per the policy:
// latest{num_versions} (default latest 1), all{}, specific{versions} (each
// must exist). Returned descending.
Result<std::vector<int64_t>> select_versions(const inference::ModelConfig& config, std::vector<int64_t> available);

// Completes `config` from the loaded model and checks they agree: fills name,
// platform, inputs and outputs (dims without the batch dim when
// max_batch_size > 0) that the config leaves out; checks listed inputs and
// outputs exist with the model's data type, compatible dims (and reshape
// element counts), and that a batching model's inputs and outputs have a
// variable (or matching) leading dim. Errors name the tensor and the field.
Status complete_model_config(inference::ModelConfig& config, const Session& session, const std::string& file);

// Triton's auto-complete of batching, for a model without config.pbtxt: when
// `max_batch_size` > 0 and every input and output of the model has a variable
// leading dim, the config gets that max_batch_size and a dynamic batcher (with
// no queue delay). Returns whether it did.
bool autocomplete_batching(inference::ModelConfig& config, const Session& session, int64_t max_batch_size);

// Total instances of the config's instance groups (1 when none).
int instance_count(const inference::ModelConfig& config);

// inference::DataType <-> element type / KServe name.
Result<DataType> dtype_from_config(inference::DataType type);
inference::DataType config_dtype(DataType type);

// Full shape of a config tensor as a request carries it: [-1, dims...] when
// max_batch_size > 0, else dims.
std::vector<int64_t> request_shape(const inference::ModelConfig& config, const google::protobuf::RepeatedField<int64_t>& dims);

// Intra-op threads per instance so that instances x threads <= cores.
int threads_per_instance(int instances, int cores);

}  // namespace hearth::repository
