// config.pbtxt parsing (protobuf's TextFormat), checks, and completion from
// the loaded model. See model_config.h.
#include "repository/model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <set>
#include <thread>

#include "core/machine.h"

namespace hearth::repository {

namespace {

// Keeps the first parse error with its position (protobuf counts from 0).
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (!message_.empty()) return;
    message_ = str_cat(line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

struct TypeName {
  inference::DataType config;
  DataType engine;
};

constexpr TypeName kTypes[] = {
    {inference::TYPE_BOOL, DataType::kBool},     {inference::TYPE_UINT8, DataType::kUInt8},
    {inference::TYPE_UINT16, DataType::kUInt16}, {inference::TYPE_UINT32, DataType::kUInt32},
    {inference::TYPE_UINT64, DataType::kUInt64}, {inference::TYPE_INT8, DataType::kInt8},
    {inference::TYPE_INT16, DataType::kInt16},   {inference::TYPE_INT32, DataType::kInt32},
    {inference::TYPE_INT64, DataType::kInt64},   {inference::TYPE_FP16, DataType::kFloat16},
    {inference::TYPE_FP32, DataType::kFloat},    {inference::TYPE_FP64, DataType::kDouble},
    {inference::TYPE_BF16, DataType::kBFloat16},
};

const ValueInfo* find_info(const std::vector<ValueInfo>& infos, const std::string& name) {
  for (const ValueInfo& v : infos)
    if (v.name == name) return &v;
  return nullptr;
}

std::string dims_str(const google::protobuf::RepeatedField<int64_t>& dims) {
  std::string s = "[";
  for (int i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

int64_t dims_numel(const google::protobuf::RepeatedField<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n = d < 0 ? -1 : (n < 0 ? -1 : n * d);
  return n;
}

// The model's dims as the config states them: batch dim dropped when batching.
std::vector<int64_t> model_dims(const ValueInfo& info, bool batching) {
  std::vector<int64_t> dims(info.dims.begin(), info.dims.end());
  for (int64_t& d : dims) d = d < 0 ? -1 : d;
  if (batching && !dims.empty()) dims.erase(dims.begin());
  return dims;
}

// Checks one config tensor (input or output) against the model's ValueInfo.
template <typename T>
Status check_tensor(T& tensor, const ValueInfo& info, bool batching, const std::string& what) {
  if (tensor.data_type() == inference::TYPE_INVALID) tensor.set_data_type(config_dtype(info.dtype));
  if (tensor.data_type() != config_dtype(info.dtype))
    return invalid_argument(what, ": data_type ", inference::DataType_Name(tensor.data_type()),
                            " but the model has ", inference::DataType_Name(config_dtype(info.dtype)));
  if (!info.has_shape) return ok_status();
  if (batching && info.dims.empty())
    return invalid_argument(what, ": max_batch_size > 0 needs a leading batch dim, but the model's shape is ",
                            info.describe());
  if (batching && info.dims[0] >= 0)
    return invalid_argument(what, ": max_batch_size > 0 needs a variable leading (batch) dim, but the model's is ",
                            info.dims[0], " (set max_batch_size: 0)");
  std::vector<int64_t> want = model_dims(info, batching);
  if (tensor.dims().empty() && !want.empty() && !tensor.has_reshape()) {
    for (int64_t d : want) tensor.add_dims(d);
    return ok_status();
  }
  if (tensor.has_reshape()) {
    int64_t a = dims_numel(tensor.dims()), b = dims_numel(tensor.reshape().shape());
    if (a >= 0 && b >= 0 && a != b)
      return invalid_argument(what, ": dims ", dims_str(tensor.dims()), " and reshape ",
                              dims_str(tensor.reshape().shape()), " hold different element counts");
    if (tensor.reshape().shape().size() != static_cast<int>(want.size()))
      return invalid_argument(what, ": reshape ", dims_str(tensor.reshape().shape()), " does not have the model's rank (",
                              info.describe(), ")");
    return ok_status();
  }
  if (tensor.dims().size() != static_cast<int>(want.size()))
    return invalid_argument(what, ": dims ", dims_str(tensor.dims()), " do not match the model's shape ",
                            info.describe(), batching ? " without its batch dim" : "");
  for (size_t i = 0; i < want.size(); ++i) {
    int64_t c = tensor.dims(static_cast<int>(i));
    if (c < -1) return invalid_argument(what, ": dims ", dims_str(tensor.dims()), " has a bad dim");
    if (c >= 0 && want[i] >= 0 && c != want[i])
      return invalid_argument(what, ": dims ", dims_str(tensor.dims()), " do not match the model's shape ",
                              info.describe(), " at dim ", i);
  }
  return ok_status();
}

template <typename T>
void add_missing(google::protobuf::RepeatedPtrField<T>* tensors, const std::vector<ValueInfo>& infos, bool batching) {
  for (const ValueInfo& info : infos) {
    bool listed = false;
    for (const T& t : *tensors) listed = listed || t.name() == info.name;
    if (listed) continue;
    T* t = tensors->Add();
    t->set_name(info.name);
  }
}

}  // namespace

Result<inference::ModelConfig> parse_model_config(const std::string& text, const std::string& file) {
  inference::ModelConfig config;
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config))
    return invalid_argument(file, ":", errors.message().empty() ? std::string(" cannot parse") : errors.message());
  return config;
}

Status check_model_config(const inference::ModelConfig& config, const std::string& model_name,
                          const std::string& file) {
  if (!config.name().empty() && config.name() != model_name)
    return invalid_argument(file, ": name '", config.name(), "' differs from the model folder '", model_name, "'");
  if (!config.platform().empty() && config.platform() != kPlatform)
    return invalid_argument(file, ": platform '", config.platform(), "' is not supported (only ", kPlatform, ")");
  if (!config.backend().empty() && config.backend() != "onnxruntime" && config.backend() != "hearth")
    return invalid_argument(file, ": backend '", config.backend(), "' is not supported (onnxruntime or hearth)");
  if (config.max_batch_size() < 0) return invalid_argument(file, ": max_batch_size must be >= 0");
  // The model file is looked up in <model>/<version>/: a name with a folder
  // in it could point at another model's file (and past its access rules).
  if (const std::string& f = config.default_model_filename(); !f.empty()) {
    if (f == "." || f == ".." || f[0] == '.' || f.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      return invalid_argument(file, ": default_model_filename '", f,
                              "' must be a plain file name in the version folder (no '/', '\\', or leading '.')");
  }
  if (config.has_dynamic_batching()) {
    const auto& db = config.dynamic_batching();
    if (config.max_batch_size() == 0)
      return invalid_argument(file, ": dynamic_batching needs max_batch_size > 0");
    for (int p : db.preferred_batch_size())
      if (p < 1 || p > config.max_batch_size())
        return invalid_argument(file, ": preferred_batch_size ", p, " is outside 1..max_batch_size (",
                                config.max_batch_size(), ")");
    if (db.default_queue_policy().timeout_action() != inference::ModelQueuePolicy::REJECT)
      return invalid_argument(file, ": default_queue_policy.timeout_action DELAY is not supported (use REJECT)");
    if (db.max_queue_delay_microseconds() > 10'000'000)
      return invalid_argument(file, ": max_queue_delay_microseconds over 10 s is not supported");
  }
  for (const auto& group : config.instance_group()) {
    if (group.kind() == inference::ModelInstanceGroup::KIND_GPU || group.gpus_size() > 0)
      return invalid_argument(file, ": instance_group '", group.name(), "' asks for a GPU; Hearth serves on CPU (KIND_CPU)");
    if (group.count() < 0 || group.count() > 64)
      return invalid_argument(file, ": instance_group count ", group.count(), " is outside 0..64");
  }
  const auto& policy = config.version_policy();
  if (policy.has_latest() && policy.latest().num_versions() == 0)
    return invalid_argument(file, ": version_policy latest needs num_versions >= 1");
  if (policy.has_specific()) {
    if (policy.specific().versions().empty())
      return invalid_argument(file, ": version_policy specific lists no versions");
    for (int64_t v : policy.specific().versions())
      if (v <= 0) return invalid_argument(file, ": version_policy specific version ", v, " is not positive");
  }
  for (const auto& p : config.parameters()) {
    const std::string& v = p.second.string_value();
    const bool digits = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
    if (p.first == "intra_op_thread_count" && (!digits || v.size() > 3))
      return invalid_argument(file, ": parameter intra_op_thread_count '", v, "' is not a small integer");
    if ((p.first == "max_tensor_bytes" || p.first == "max_memory_bytes") && (!digits || v.size() > 18 || v == "0"))
      return invalid_argument(file, ": parameter ", p.first, " '", v, "' is not a positive number of bytes");
  }
  return ok_status();
}

Result<std::vector<int64_t>> select_versions(const inference::ModelConfig& config, std::vector<int64_t> available) {
  std::sort(available.rbegin(), available.rend());
  const auto& policy = config.version_policy();
  if (policy.has_all()) return available;
  if (policy.has_specific()) {
    std::vector<int64_t> out;
    for (int64_t v : policy.specific().versions()) {
      if (std::find(available.begin(), available.end(), v) == available.end())
        return not_found("version_policy specific names version ", v, " but there is no folder ", v, "/");
      out.push_back(v);
    }
    std::sort(out.rbegin(), out.rend());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  size_t n = policy.has_latest() ? policy.latest().num_versions() : 1;
  if (available.size() > n) available.resize(n);
  return available;
}

Status complete_model_config(inference::ModelConfig& config, const Session& session, const std::string& file) {
  const bool batching = config.max_batch_size() > 0;
  if (config.platform().empty() && config.backend().empty()) config.set_platform(kPlatform);
  add_missing(config.mutable_input(), session.inputs(), batching);
  add_missing(config.mutable_output(), session.outputs(), batching);
  std::set<std::string> seen;
  for (auto& in : *config.mutable_input()) {
    std::string what = str_cat(file, ": input '", in.name(), "'");
    const ValueInfo* info = find_info(session.inputs(), in.name());
    if (info == nullptr) return invalid_argument(what, " is not an input of the model");
    if (!seen.insert("i" + in.name()).second) return invalid_argument(what, " is listed twice");
    HEARTH_RETURN_IF_ERROR(check_tensor(in, *info, batching, what));
  }
  for (auto& out : *config.mutable_output()) {
    std::string what = str_cat(file, ": output '", out.name(), "'");
    const ValueInfo* info = find_info(session.outputs(), out.name());
    if (info == nullptr) return invalid_argument(what, " is not an output of the model");
    if (!seen.insert("o" + out.name()).second) return invalid_argument(what, " is listed twice");
    HEARTH_RETURN_IF_ERROR(check_tensor(out, *info, batching, what));
  }
  return ok_status();
}

bool autocomplete_batching(inference::ModelConfig& config, const Session& session, int64_t max_batch_size) {
  if (max_batch_size <= 0 || config.max_batch_size() > 0 || config.input_size() > 0 || config.output_size() > 0)
    return false;
  auto batchable = [](const std::vector<ValueInfo>& values) {
    if (values.empty()) return false;
    for (const auto& v : values)
      if (!v.has_shape || v.dims.empty() || v.dims[0] >= 0) return false;
    return true;
  };
  if (!batchable(session.inputs()) || !batchable(session.outputs())) return false;
  config.set_max_batch_size(static_cast<int32_t>(std::min<int64_t>(max_batch_size, INT32_MAX)));
  if (!config.has_dynamic_batching()) config.mutable_dynamic_batching();
  return true;
}

int instance_count(const inference::ModelConfig& config) {
  int n = 0;
  for (const auto& g : config.instance_group()) n += g.count() > 0 ? g.count() : 1;
  return n > 0 ? n : 1;
}

Result<DataType> dtype_from_config(inference::DataType type) {
  for (const auto& t : kTypes)
    if (t.config == type) return t.engine;
  return unimplemented("config data_type ", inference::DataType_Name(type), " is not supported");
}

inference::DataType config_dtype(DataType type) {
  for (const auto& t : kTypes)
    if (t.engine == type) return t.config;
  return inference::TYPE_INVALID;
}

std::vector<int64_t> request_shape(const inference::ModelConfig& config,
                                   const google::protobuf::RepeatedField<int64_t>& dims) {
  std::vector<int64_t> shape;
  if (config.max_batch_size() > 0) shape.push_back(-1);
  shape.insert(shape.end(), dims.begin(), dims.end());
  return shape;
}

int threads_per_instance(int instances, int cores) {
  if (cores <= 0) cores = std::max(1, cpu_info().physical_cores);
  return std::max(1, cores / std::max(1, instances));
}

}  // namespace hearth::repository
