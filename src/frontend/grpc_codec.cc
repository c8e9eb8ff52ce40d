// KServe v2 gRPC messages <-> protocol-neutral inference structs.
#include "frontend/grpc_codec.h"

#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve

namespace {

using inference::InferTensorContents;
using inference::ModelInferRequest;

// The typed contents field that carries `type`; nullptr when there is none
// (FP16 / BF16 travel raw only).
const char* contents_field_for(DataType type) {
  switch (type) {
    case DataType::kBool: return "bool_contents";
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32: return "int_contents";
    case DataType::kInt64: return "int64_contents";
    case DataType::kUInt8:
    case DataType::kUInt16:
    case DataType::kUInt32: return "uint_contents";
    case DataType::kUInt64: return "uint64_contents";
    case DataType::kFloat: return "fp32_contents";
    case DataType::kDouble: return "fp64_contents";
    default: return nullptr;
  }
}

struct FieldCount {
  const char* name;
  int count;
};

std::vector<FieldCount> field_counts(const InferTensorContents& c) {
  return {{"bool_contents", c.bool_contents_size()},   {"int_contents", c.int_contents_size()},
          {"int64_contents", c.int64_contents_size()}, {"uint_contents", c.uint_contents_size()},
          {"uint64_contents", c.uint64_contents_size()}, {"fp32_contents", c.fp32_contents_size()},
          {"fp64_contents", c.fp64_contents_size()},   {"bytes_contents", c.bytes_contents_size()}};
}

bool has_any_contents(const InferTensorContents& c) {
  for (const FieldCount& f : field_counts(c))
    if (f.count > 0) return true;
  return false;
}

// Copies typed values into `t` (already sized), checking that narrow integer
// types can hold every value.
template <typename Dst, typename Field>
Status copy_values(const Field& src, const std::string& ctx, const std::string& datatype, Tensor& t) {
  Dst* dst = t.data<Dst>();
  for (int i = 0; i < src.size(); ++i) {
    auto v = src.Get(i);
    if constexpr (std::is_integral_v<Dst> && !std::is_same_v<Dst, bool>) {
      if (!std::in_range<Dst>(v))
        return invalid_argument(ctx, ": value ", v, " at index ", i, " does not fit ", datatype);
    }
    dst[i] = static_cast<Dst>(v);
  }
  return ok_status();
}

Status copy_typed(const InferTensorContents& c, DataType type, const std::string& ctx, const std::string& datatype,
                  Tensor& t) {
  switch (type) {
    case DataType::kBool: return copy_values<bool>(c.bool_contents(), ctx, datatype, t);
    case DataType::kInt8: return copy_values<int8_t>(c.int_contents(), ctx, datatype, t);
    case DataType::kInt16: return copy_values<int16_t>(c.int_contents(), ctx, datatype, t);
    case DataType::kInt32: return copy_values<int32_t>(c.int_contents(), ctx, datatype, t);
    case DataType::kInt64: return copy_values<int64_t>(c.int64_contents(), ctx, datatype, t);
    case DataType::kUInt8: return copy_values<uint8_t>(c.uint_contents(), ctx, datatype, t);
    case DataType::kUInt16: return copy_values<uint16_t>(c.uint_contents(), ctx, datatype, t);
    case DataType::kUInt32: return copy_values<uint32_t>(c.uint_contents(), ctx, datatype, t);
    case DataType::kUInt64: return copy_values<uint64_t>(c.uint64_contents(), ctx, datatype, t);
    case DataType::kFloat: return copy_values<float>(c.fp32_contents(), ctx, datatype, t);
    case DataType::kDouble: return copy_values<double>(c.fp64_contents(), ctx, datatype, t);
    default: return invalid_argument(ctx, ": datatype ", datatype, " must be sent in raw_input_contents");
  }
}

// Typed contents: exactly the field matching the datatype, numel values.
Result<Tensor> decode_typed(const ModelInferRequest::InferInputTensor& in, DataType type, int64_t numel,
                            const std::string& ctx) {
  const char* want = contents_field_for(type);
  if (want == nullptr)
    return invalid_argument(ctx, ": datatype ", in.datatype(), " has no typed contents field; send it in raw_input_contents");
  int have = 0;
  for (const FieldCount& f : field_counts(in.contents())) {
    if (f.name == std::string(want)) {
      have = f.count;
    } else if (f.count > 0) {
      return invalid_argument(ctx, ": datatype ", in.datatype(), " carries its data in contents.", want, " but ",
                              f.name, " was given");
    }
  }
  if (have != numel) {
    if (have == 0 && numel > 0)
      return invalid_argument(ctx, ": no data (set contents.", want, " or raw_input_contents)");
    return invalid_argument(ctx, ": shape ", shape_str(Shape(in.shape().begin(), in.shape().end())), " needs ",
                            numel, " elements but contents.", want, " has ", have);
  }
  Tensor t(type, {numel});
  HEARTH_RETURN_IF_ERROR(copy_typed(in.contents(), type, ctx, in.datatype(), t));
  return t;
}

// Raw contents: little-endian bytes, exactly numel x element size of them.
Result<Tensor> decode_raw(const std::string& raw, DataType type, int64_t numel, const Shape& shape,
                          const std::string& datatype, const std::string& ctx) {
  int64_t size = static_cast<int64_t>(dtype_size(type));
  if (size <= 0) return invalid_argument(ctx, ": datatype ", datatype, " has no fixed element size");
  if (numel > std::numeric_limits<int64_t>::max() / size)
    return invalid_argument(ctx, ": shape ", shape_str(shape), " has too many elements");
  int64_t want = numel * size;
  if (static_cast<int64_t>(raw.size()) != want)
    return invalid_argument(ctx, ": raw_input_contents has ", raw.size(), " bytes but shape ", shape_str(shape),
                            " of ", datatype, " needs ", want);
  Tensor t(type, {numel});
  if (want > 0) std::memcpy(t.raw_data(), raw.data(), static_cast<size_t>(want));
  return t;
}

Result<InferInput> decode_input(const ModelInferRequest& request, int index) {
  const ModelInferRequest::InferInputTensor& in = request.inputs(index);
  std::string ctx = str_cat("input '", in.name(), "'");
  if (in.name().empty()) ctx = str_cat("input #", index);
  InferInput out;
  out.name = in.name();
  out.datatype = in.datatype();
  out.shape.assign(in.shape().begin(), in.shape().end());
  auto type = datatype_from_kserve(in.datatype());
  if (!type.ok()) return type.status().with_context(ctx);
  auto checked = hearth::checked_numel(out.shape);  // refuses negative dims and int64 overflow
  if (!checked.ok()) return checked.status().with_context(ctx);
  const int64_t numel = *checked;
  if (request.raw_input_contents_size() > 0) {
    if (has_any_contents(in.contents()))
      return invalid_argument(ctx, ": has contents although the request uses raw_input_contents "
                                   "(raw must be used for all inputs or none)");
    HEARTH_ASSIGN_OR_RETURN(out.data,
                            decode_raw(request.raw_input_contents(index), *type, numel, out.shape, in.datatype(), ctx));
  } else {
    HEARTH_ASSIGN_OR_RETURN(out.data, decode_typed(in, *type, numel, ctx));
  }
  return out;
}

// "timeout": microseconds the request may wait in the queue; "routing_key": a
// release's sticky key.
Status decode_parameters(const ModelInferRequest& request, InferRequest& out) {
  auto key = request.parameters().find("routing_key");
  if (key != request.parameters().end()) {
    const inference::InferParameter& p = key->second;
    if (p.parameter_choice_case() != inference::InferParameter::kStringParam ||
        p.string_param().size() > serving::kMaxRoutingKeyBytes)
      return invalid_argument("parameter 'routing_key' must be a string of at most ", serving::kMaxRoutingKeyBytes,
                              " bytes");
    out.routing_key = p.string_param();
  }
  auto it = request.parameters().find("timeout");
  if (it == request.parameters().end()) return ok_status();
  const inference::InferParameter& p = it->second;
  if (p.parameter_choice_case() == inference::InferParameter::kInt64Param) {
    if (p.int64_param() < 0) return invalid_argument("parameter 'timeout' is negative: ", p.int64_param());
    out.timeout_us = static_cast<uint64_t>(p.int64_param());
  } else if (p.parameter_choice_case() == inference::InferParameter::kUint64Param) {
    out.timeout_us = p.uint64_param();
  } else {
    return invalid_argument("parameter 'timeout' must be an int64 number of microseconds");
  }
  return ok_status();
}

void set_duration(const StatDuration& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

}  // namespace

grpc::Status to_grpc_status(const Status& status) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (status.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnimplemented:
    case StatusCode::kOutOfRange: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case StatusCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case StatusCode::kDeadlineExceeded: code = grpc::StatusCode::DEADLINE_EXCEEDED; break;
    case StatusCode::kCancelled: code = grpc::StatusCode::CANCELLED; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kUnauthenticated: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case StatusCode::kPermissionDenied: code = grpc::StatusCode::PERMISSION_DENIED; break;
    case StatusCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    default: break;
  }
  return grpc::Status(code, status.message());
}

Result<InferRequest> decode_infer_request(const ModelInferRequest& request) {
  if (request.model_name().empty()) return invalid_argument("model_name is empty");
  int raw = request.raw_input_contents_size();
  if (raw > 0 && raw != request.inputs_size())
    return invalid_argument("raw_input_contents has ", raw, " entries but the request has ", request.inputs_size(),
                            " inputs (raw must be used for all inputs or none)");
  InferRequest out;
  out.model_name = request.model_name();
  out.model_version = request.model_version();
  out.id = request.id();
  for (int i = 0; i < request.inputs_size(); ++i) {
    HEARTH_ASSIGN_OR_RETURN(InferInput in, decode_input(request, i));
    out.inputs.push_back(std::move(in));
  }
  for (const auto& o : request.outputs()) {
    // The classification extension (see json_codec.cc): refused by name, never ignored.
    if (o.parameters().count("classification"))
      return unimplemented("output '", o.name(),
                           "': the classification extension (parameter 'classification', tritonclient's "
                           "class_count) is not supported by Hearth yet; ask for the raw tensor");
    out.requested_outputs.push_back(o.name());
  }
  HEARTH_RETURN_IF_ERROR(decode_parameters(request, out));
  return out;
}

void encode_infer_response(const InferResponse& response, inference::ModelInferResponse* out) {
  out->set_model_name(response.model_name);
  out->set_model_version(response.model_version);
  out->set_id(response.id);
  for (const InferOutput& o : response.outputs) {
    auto* t = out->add_outputs();
    t->set_name(o.name);
    t->set_datatype(o.datatype);
    for (int64_t d : o.data.shape()) t->add_shape(d);
    std::string* bytes = out->add_raw_output_contents();
    size_t n = o.data.defined() ? o.data.nbytes() : 0;
    if (n > 0) bytes->assign(static_cast<const char*>(o.data.raw_data()), n);
  }
}

void encode_model_metadata(const ModelMetadata& metadata, inference::ModelMetadataResponse* out) {
  out->set_name(metadata.name);
  for (const std::string& v : metadata.versions) out->add_versions(v);
  out->set_platform(metadata.platform);
  auto add = [](const TensorMetadata& m, inference::ModelMetadataResponse::TensorMetadata* t) {
    t->set_name(m.name);
    t->set_datatype(m.datatype);
    for (int64_t d : m.shape) t->add_shape(d);
  };
  for (const TensorMetadata& m : metadata.inputs) add(m, out->add_inputs());
  for (const TensorMetadata& m : metadata.outputs) add(m, out->add_outputs());
}

void encode_model_statistics(const ModelStatistics& stats, inference::ModelStatistics* out) {
  out->set_name(stats.name);
  out->set_version(stats.version);
  out->set_last_inference(stats.last_inference_ms);
  out->set_inference_count(stats.inference_count);
  out->set_execution_count(stats.execution_count);
  inference::InferStatistics* s = out->mutable_inference_stats();
  set_duration(stats.success, s->mutable_success());
  set_duration(stats.fail, s->mutable_fail());
  set_duration(stats.queue, s->mutable_queue());
  set_duration(stats.compute_input, s->mutable_compute_input());
  set_duration(stats.compute_infer, s->mutable_compute_infer());
  set_duration(stats.compute_output, s->mutable_compute_output());
  for (const BatchStatistics& b : stats.batch_stats) {
    inference::InferBatchStatistics* bs = out->add_batch_stats();
    bs->set_batch_size(b.batch_size);
    set_duration(b.compute_input, bs->mutable_compute_input());
    set_duration(b.compute_infer, bs->mutable_compute_infer());
    set_duration(b.compute_output, bs->mutable_compute_output());
  }
}

}  // namespace hearth::frontend
