// Validation and execution of protocol-neutral inference requests.
#include "serving/inference.h"

#include <set>
#include <utility>

namespace hearth::serving {

namespace {

struct DatatypeName {
  const char* name;
  DataType type;
};

constexpr DatatypeName kDatatypes[] = {
    {"BOOL", DataType::kBool},     {"UINT8", DataType::kUInt8},   {"UINT16", DataType::kUInt16},
    {"UINT32", DataType::kUInt32}, {"UINT64", DataType::kUInt64}, {"INT8", DataType::kInt8},
    {"INT16", DataType::kInt16},   {"INT32", DataType::kInt32},   {"INT64", DataType::kInt64},
    {"FP16", DataType::kFloat16},  {"FP32", DataType::kFloat},    {"FP64", DataType::kDouble},
    {"BF16", DataType::kBFloat16},
};

const ValueInfo* find_info(const std::vector<ValueInfo>& infos, const std::string& name) {
  for (const ValueInfo& v : infos)
    if (v.name == name) return &v;
  return nullptr;
}

Status validate_input(const InferInput& in, const ValueInfo& info) {
  std::string ctx = str_cat("input '", in.name, "'");
  HEARTH_ASSIGN_OR_RETURN(DataType type, datatype_from_kserve(in.datatype));
  if (type != info.dtype)
    return invalid_argument(ctx, ": datatype ", in.datatype, " but the model expects ", kserve_datatype(info.dtype));
  for (int64_t d : in.shape)
    if (d < 0) return invalid_argument(ctx, ": shape ", shape_str(in.shape), " has a negative dim");
  if (info.has_shape) {
    if (in.shape.size() != info.dims.size())
      return invalid_argument(ctx, ": shape ", shape_str(in.shape), " has rank ", in.shape.size(),
                              " but the model expects ", info.describe());
    for (size_t i = 0; i < info.dims.size(); ++i) {
      if (info.dims[i] >= 0 && info.dims[i] != in.shape[i])
        return invalid_argument(ctx, ": shape ", shape_str(in.shape), " does not match the model's ",
                                info.describe(), " at dim ", i);
    }
  }
  // Overflow-safe element count: stop once it exceeds what the data holds.
  int64_t want = 1;
  int64_t have = in.data.defined() ? in.data.numel() : 0;
  for (int64_t d : in.shape) {
    if (d != 0 && want > have / d + 1) {
      want = -1;
      break;
    }
    want *= d;
  }
  if (want != have)
    return invalid_argument(ctx, ": shape ", shape_str(in.shape), " needs ",
                            want < 0 ? std::string("more") : std::to_string(want), " elements but data has ", have);
  if (in.data.dtype() != type) return internal_error(ctx, ": data decoded as ", dtype_name(in.data.dtype()));
  return ok_status();
}

}  // namespace

Result<DataType> datatype_from_kserve(const std::string& name) {
  for (const auto& d : kDatatypes)
    if (name == d.name) return d.type;
  if (name == "BYTES") return unimplemented("datatype BYTES is not supported (the engine has no string tensors)");
  return invalid_argument("unknown datatype '", name, "'");
}

std::string kserve_datatype(DataType type) {
  for (const auto& d : kDatatypes)
    if (type == d.type) return d.name;
  return "";
}

Status validate_request(const InferRequest& request, const Session& session) {
  std::set<std::string> seen;
  for (const InferInput& in : request.inputs) {
    const ValueInfo* info = find_info(session.inputs(), in.name);
    if (info == nullptr) return invalid_argument("unknown input '", in.name, "'");
    if (!seen.insert(in.name).second) return invalid_argument("input '", in.name, "' is given twice");
    HEARTH_RETURN_IF_ERROR(validate_input(in, *info));
  }
  for (const ValueInfo& info : session.inputs())
    if (!seen.count(info.name)) return invalid_argument("missing input '", info.name, "'");
  for (const std::string& out : request.requested_outputs)
    if (find_info(session.outputs(), out) == nullptr) return invalid_argument("unknown output '", out, "'");
  return ok_status();
}

Result<InferResponse> infer(const ModelRepository& repository, const InferRequest& request) {
  HEARTH_ASSIGN_OR_RETURN(const ServedModel* model, repository.find(request.model_name, request.model_version));
  if (!model->ready())
    return Status(StatusCode::kUnavailable, str_cat("model '", model->name, "' is not ready: ", model->reason));
  Session& session = *model->session;
  HEARTH_RETURN_IF_ERROR(validate_request(request, session));

  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const InferInput& in : request.inputs) {
    HEARTH_ASSIGN_OR_RETURN(Tensor shaped, in.data.reshaped(in.shape));
    feeds.emplace_back(in.name, std::move(shaped));
  }
  HEARTH_ASSIGN_OR_RETURN(std::vector<Tensor> results, session.run(feeds));

  InferResponse response;
  response.model_name = model->name;
  response.model_version = std::to_string(model->version);
  response.id = request.id;
  const auto& infos = session.outputs();
  for (size_t i = 0; i < infos.size() && i < results.size(); ++i) {
    const std::string& name = infos[i].name;
    bool wanted = request.requested_outputs.empty();
    for (const std::string& r : request.requested_outputs) wanted = wanted || r == name;
    if (!wanted) continue;
    std::string datatype = kserve_datatype(results[i].dtype());
    if (datatype.empty())
      return unimplemented("output '", name, "' has type ", dtype_name(results[i].dtype()), " which KServe lacks");
    response.outputs.push_back({name, datatype, results[i]});
  }
  return response;
}

}  // namespace hearth::serving
